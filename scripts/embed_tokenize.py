"""Snakemake entry point of rule `embed_tokenize`: one shard -> tokens in a single GPU pass."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.embed.embedder import EmbedOptions  # noqa: E402
from structure_tokens.tokenize.direct import embed_and_tokenize_shard  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
inp = snakemake.input  # noqa: F821
options = EmbedOptions.from_config(snakemake.params.options)  # noqa: F821
stats = embed_and_tokenize_shard(inp.shard, inp.checkpoint, inp.codebook, snakemake.output[0], options)  # noqa: F821
log.info("tokenized %s", stats)
