"""Embedding stage: ESM-2 checkpoints, the batched embedder and the per-shard HDF5 store."""
