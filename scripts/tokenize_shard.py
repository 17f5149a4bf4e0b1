"""Snakemake entry point of rule `tokenize`: one shard's stored embeddings -> tokens."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.tokenize.from_embeddings import tokenize_shard
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
stats = tokenize_shard(snakemake.input.embeddings, snakemake.input.codebook, snakemake.output[0])
log.info("tokenized %s", stats)
