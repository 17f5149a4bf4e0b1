"""Snakemake entry point of rule `embed`: one shard -> per-residue ESM-2 embeddings (HDF5)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.embed.embedder import embed_shard
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.atomic import write_json
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
options = EmbedOptions.from_config(snakemake.params.model)
out = snakemake.output
stats = embed_shard(snakemake.input.shard, snakemake.input.checkpoint, out.embeddings, options)
write_json(out.throughput, stats)  # throughput numbers of this shard, next to its benchmark file
