"""Snakemake entry point of rule `tokenize`: one shard's stored embeddings -> tokens."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.tokenize.assign import tokenize_shard  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
stats = tokenize_shard(snakemake.input.embeddings, snakemake.input.codebook, snakemake.output[0])  # noqa: F821
log.info("tokenized %s", stats)
