"""Snakemake entry point of rule `prepare`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.prepare import prepare_inputs
from structure_tokens.threads import limit_threads
from structure_tokens.workflow_logging import configure_logging

log = configure_logging(snakemake.log[0])
log.info("thread pools capped at the rule's threads: %s", limit_threads(snakemake.threads))
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
