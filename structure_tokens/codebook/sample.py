"""Bounded, seeded residue samples from embedding shards, with a stable held-out split."""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from structure_tokens.formats.embeddings import EmbeddingShard


def is_heldout(sequence_hash: str, holdout_fraction: float) -> bool:
    """Whether a protein is held out of training, decided by its sequence hash alone.

    The first 8 hex digits map the hash to [0, 1), so the split is the same in every run
    and every shard layout.
    """
    return int(sequence_hash[:8], 16) / 16**8 < holdout_fraction


def random_rows(n_rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``min(size, n_rows)`` distinct row numbers of ``range(n_rows)``, drawn uniformly, sorted."""
    size = min(size, n_rows)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


def rows_of_proteins(offsets: np.ndarray, proteins: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Map positions in the concatenated residues of ``proteins`` to rows of the shard.

    ``picks`` index the residues of the selected proteins laid end to end (sorted); the
    result indexes the shard's ``/embeddings`` (sorted, as h5py fancy indexing needs).
    """
    starts = offsets[proteins]
    lengths = offsets[proteins + 1] - starts
    ends = np.cumsum(lengths)
    owner = np.searchsorted(ends, picks, side="right")
    return starts[owner] + picks - (ends[owner] - lengths[owner])


def read_rows(shard: EmbeddingShard, rows: np.ndarray) -> np.ndarray:
    """The embeddings of the given sorted shard rows as float32 ``(len(rows), dim)``."""
    if len(rows) == 0:
        return np.zeros((0, shard.dim), dtype=np.float32)
    return np.asarray(shard.rows(rows), dtype=np.float32)


def sample_residues(
    embedding_paths: Sequence[str | os.PathLike],
    *,
    per_shard: int,
    max_total: int,
    holdout_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw training and held-out residue embeddings (float32) from every shard.

    Each shard contributes at most ``min(per_shard, ceil(max_total / n_shards))`` training
    residues, drawn uniformly from its training proteins with ``seed + shard position``, and
    a proportional ``holdout_fraction`` share from its held-out proteins. Only the drawn rows
    are read, so memory is bounded by the sample, not by the shards.
    Returns ``(train, heldout, info)``; ``info`` holds the counts and the shards' ``provenance``.
    """
    if not embedding_paths:
        raise ValueError("no embedding shards given to sample residues from")
    quota = min(per_shard, math.ceil(max_total / len(embedding_paths)))
    heldout_quota = math.ceil(quota * holdout_fraction)
    info: dict[str, Any] = {"n_shards": len(embedding_paths), "per_shard_quota": quota,
                            "n_train_proteins": 0, "n_heldout_proteins": 0}
    # First pass: choose the rows (small index arrays) and check that the shards agree.
    train_rows: list[np.ndarray] = []
    heldout_rows: list[np.ndarray] = []
    for position, path in enumerate(embedding_paths):
        rng = np.random.default_rng(seed + position)
        with EmbeddingShard(path) as shard:
            found = shard.provenance
            info.setdefault("provenance", found).require_match(found, f"embedding shard {embedding_paths[0]}", path)
            offsets = np.asarray(shard.offsets, dtype=np.int64)
            heldout = np.array([is_heldout(h, holdout_fraction) for h in shard.sequence_hashes], dtype=bool)
        info["n_train_proteins"] += int((~heldout).sum())
        info["n_heldout_proteins"] += int(heldout.sum())
        for mask, size, chosen in ((~heldout, quota, train_rows), (heldout, heldout_quota, heldout_rows)):
            proteins = np.flatnonzero(mask)
            n_rows = int((offsets[proteins + 1] - offsets[proteins]).sum())
            chosen.append(rows_of_proteins(offsets, proteins, random_rows(n_rows, size, rng)))
    # Second pass: read exactly those rows into preallocated arrays.
    train = read_sample(embedding_paths, train_rows, info["provenance"].dim)
    heldout = read_sample(embedding_paths, heldout_rows, info["provenance"].dim)
    info.update(n_train=len(train), n_heldout=len(heldout))
    return train, heldout, info


def read_sample(embedding_paths: Sequence[str | os.PathLike], rows_per_shard: Sequence[np.ndarray],
                dim: int) -> np.ndarray:
    """The chosen rows of every shard, stacked into one float32 array allocated once."""
    sample = np.empty((sum(len(rows) for rows in rows_per_shard), dim), dtype=np.float32)
    filled = 0
    for path, rows in zip(embedding_paths, rows_per_shard):
        with EmbeddingShard(path) as shard:
            sample[filled:filled + len(rows)] = read_rows(shard, rows)
        filled += len(rows)
    return sample
