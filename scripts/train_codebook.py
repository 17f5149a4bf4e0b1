"""Snakemake entry point of rule `train_codebook`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.codebook.train import train_codebook_from_shards
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
codebook = train_codebook_from_shards(
    list(snakemake.input),
    snakemake.output.codebook,
    snakemake.output.training,
    CodebookOptions.from_config(snakemake.params.codebook),
)
log.info("codebook K=%d dim=%d sha256=%s", codebook.k, codebook.dim, codebook.sha256)
