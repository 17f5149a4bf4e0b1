"""A 2-D PCA projection of a bounded, seeded sample of tokenized residues (drawn by the report)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.decomposition import PCA

from structure_tokens.codebook.sample import random_rows, read_rows
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.provenance import Provenance
from structure_tokens.formats.tokens import TokenShard


@dataclass(frozen=True)
class Projection:
    """Residues projected on the first two principal components, with their tokens."""

    points: np.ndarray  # (n, 2)
    tokens: np.ndarray  # (n,)
    variance_percent: np.ndarray  # (2,) explained variance of PC1, PC2 in %
    provenance: Provenance  # of the embeddings
    k: int


def sample_tokenized_residues(embedding_paths: Sequence[str | os.PathLike], token_h5s: Sequence[str | os.PathLike],
                              n_residues: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n_residues`` residues spread evenly over the shards: embeddings and their tokens."""
    if len(embedding_paths) != len(token_h5s) or not embedding_paths:
        raise ValueError(f"need matching, non-empty embedding and token lists, got "
                         f"{len(embedding_paths)} and {len(token_h5s)}")
    quotas = [n_residues // len(embedding_paths) + (i < n_residues % len(embedding_paths))
              for i in range(len(embedding_paths))]  # exactly n_residues in all
    embeddings, tokens = [], []
    for position, (embedding_h5, token_h5, quota) in enumerate(zip(embedding_paths, token_h5s, quotas)):
        with EmbeddingShard(embedding_h5) as shard, TokenShard(token_h5) as token_shard:
            if list(shard.ids) != token_shard.ids:
                raise ValueError(f"{token_h5} does not hold the proteins of {embedding_h5} in the same order")
            rows = random_rows(shard.n_residues, quota, np.random.default_rng(seed + position))
            embeddings.append(read_rows(shard, rows))
            tokens.append(token_shard.tokens[rows])
    return np.concatenate(embeddings), np.concatenate(tokens)


def pca_projection(embedding_paths: Sequence[str | os.PathLike], token_h5s: Sequence[str | os.PathLike], *,
                   n_residues: int, seed: int) -> Projection:
    """2-D PCA of at most ``n_residues`` residues of the shards, with the model, layer and K they came from."""
    X, tokens = sample_tokenized_residues(embedding_paths, token_h5s, n_residues, seed)
    with EmbeddingShard(embedding_paths[0]) as shard:
        provenance = shard.provenance
    with TokenShard(token_h5s[0]) as token_shard:
        k = token_shard.k
    pca = PCA(n_components=2, random_state=seed)
    points = pca.fit_transform(X)
    return Projection(points, tokens, pca.explained_variance_ratio_ * 100, provenance, k)
