"""Snakemake entry point of rule `prepare`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.prepare import prepare_inputs
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
options = InputOptions.from_config(snakemake.params.input)
summary = prepare_inputs(
    options.records(),
    options,
    long_policy=snakemake.params.long_policy,
    shards_dir=snakemake.params.shards,
    manifest_path=snakemake.output.manifest,
    summary_path=snakemake.output.summary,
)
log.info("prepared %s", summary)
