"""Snakemake entry point of rule `embed`: one shard -> per-residue ESM-2 embeddings (HDF5)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.embed.embedder import EmbedOptions, embed_shard  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
# Fault injection for the resume tests: fail like an OOM kill while the job has less memory
# than STRUCTURE_TOKENS_TEST_MIN_MEM_MB (retries grow mem_mb with the attempt number).
required = int(os.environ.get("STRUCTURE_TOKENS_TEST_MIN_MEM_MB", "0"))
if snakemake.resources.mem_mb < required:  # noqa: F821
    raise MemoryError(f"simulated out-of-memory: mem_mb={snakemake.resources.mem_mb} < {required}")  # noqa: F821

options = EmbedOptions.from_config(snakemake.params.options)  # noqa: F821
stats = embed_shard(snakemake.input.shard, snakemake.input.checkpoint, snakemake.output[0], options)  # noqa: F821
log.info("embedded %s", stats)
