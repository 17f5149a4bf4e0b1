"""The k-means trainer of the codebook (scikit-learn MiniBatchKMeans).

A trainer turns a float32 residue sample into a :class:`Codebook` and fit statistics; adding
another algorithm means adding a function like :func:`train_codebook` here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from structure_tokens.formats.codebook import MAX_K, Codebook


def train_codebook(
    X: np.ndarray,
    *,
    k: int,
    seed: int,
    batch_size: int,
    max_iter: int,
    model_name: str,
    layer: int,
) -> tuple[Codebook, dict[str, Any]]:
    """Fit MiniBatchKMeans (k-means++, 3 seeded inits) on ``X``; return the codebook and fit stats."""
    from sklearn.cluster import MiniBatchKMeans  # here, not at the top: tokenizing needs only torch

    if not 1 <= k <= MAX_K:
        raise ValueError(f"codebook size k={k} must be between 1 and {MAX_K} (uint16 tokens)")
    if len(X) < k:
        raise ValueError(f"only {len(X)} sampled residues to train k={k} centroids; "
                         "sample more residues (codebook.sample_per_shard / max_train_residues) or lower k")
    X = np.asarray(X, dtype=np.float32)
    started = time.perf_counter()
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size,
                            max_iter=max_iter, n_init=3).fit(X)
    codebook = Codebook(centroids=model.cluster_centers_.astype(np.float32), model_name=model_name,
                        layer=layer, seed=seed, n_train=len(X))
    stats = {"inertia": float(model.inertia_), "iterations": int(model.n_iter_),
             "minibatch_steps": int(model.n_steps_), "seconds": time.perf_counter() - started}
    return codebook, stats
