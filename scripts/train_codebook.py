"""Snakemake entry point of rule `train_codebook`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.codebook.train import train_codebook_from_shards
from structure_tokens.threads import limit_threads
from structure_tokens.workflow_logging import configure_logging

log = configure_logging(snakemake.log[0])
log.info("thread pools capped at the rule's threads: %s", limit_threads(snakemake.threads))
codebook = train_codebook_from_shards(
    list(snakemake.input),
    snakemake.output.codebook,
    snakemake.output.training,
    CodebookOptions.from_config(snakemake.params.codebook),
)
log.info("codebook K=%d dim=%d sha256=%s", codebook.k, codebook.dim, codebook.sha256)
