"""Snakemake entry point of rule `embed_tokenize`: one shard -> tokens in a single GPU pass."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.atomic import write_json
from structure_tokens.tokenize.one_pass import embed_and_tokenize_shard
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp = snakemake.input
options = EmbedOptions.from_config(snakemake.params.model)
out = snakemake.output
stats = embed_and_tokenize_shard(inp.shard, inp.checkpoint, inp.codebook, out.tokens, options)
write_json(out.throughput, stats)  # throughput numbers of this shard, next to its benchmark file
