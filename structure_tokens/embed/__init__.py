"""Embedding stage: ESM-2 checkpoints, fused attention and the batched embedder (``embed_shard``)."""
