"""Snakemake entry point of rule `prepare`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.inputs import open_source, prepare_inputs  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
source = params.input
summary = prepare_inputs(
    open_source(source["source"], source["path"], source["proteinlmbench"]),
    shard_size=params.shard_size,
    num_proteins=params.num_proteins,
    min_length=params.min_length,
    max_length=params.max_length,
    nonstandard=params.nonstandard,
    long_policy=params.long_policy,
    source=source["source"],
    input_path=source["path"],
    shards_dir=snakemake.output.shards,  # noqa: F821
    manifest_path=snakemake.output.manifest,  # noqa: F821
    summary_path=snakemake.output.summary,  # noqa: F821
)
log.info("prepared %s", summary)
