"""The file formats every stage reads and writes: the contracts between stages (docs/DESIGN.md).

This layer is the floor of the package: it imports nothing from any stage, and every stage may
import it. One module per file kind: shard tables and the manifest (``shards``, ``manifest``),
embedding shards (``embeddings``), token shards (``tokens``), the codebook (``codebook``), the
LLM vocabulary and token strings (``vocab``), the atomic and resumable writers all of them use
(``atomic``, ``resumable``), the checksums of shard files (``checksums``) and the workflow's
start-up check of the shard files on disk (``integrity``).
"""
