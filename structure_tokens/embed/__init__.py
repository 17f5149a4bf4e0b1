"""Embedding stage: ESM-2 checkpoints, fused attention and the batched embedder (``embed_shard``)."""

from structure_tokens.threads import reproducible_blas

reproducible_blas()  # before this process's first matrix product, which is when MKL reads it
