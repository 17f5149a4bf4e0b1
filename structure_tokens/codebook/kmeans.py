"""The k-means codebook: training (MiniBatchKMeans), nearest-centroid assignment, npz storage."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from structure_tokens.atomic import atomic_output
from structure_tokens.codebook.sample import sample_residues

MAX_K = 2**16  # tokens are stored as uint16


@dataclass(frozen=True)
class Codebook:
    """K centroids in embedding space plus the model/layer they were trained on."""

    centroids: np.ndarray  # float32 (k, dim)
    model_name: str
    layer: int
    seed: int
    n_train: int

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def sha256(self) -> str:
        """Hex digest of the float32 centroid bytes: identifies the codebook in token files."""
        return hashlib.sha256(np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()).hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write the npz of docs/DESIGN.md atomically; only plain arrays, no pickled objects."""
        with atomic_output(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                centroids=np.ascontiguousarray(self.centroids, dtype=np.float32),
                k=np.int64(self.k),
                dim=np.int64(self.dim),
                seed=np.int64(self.seed),
                layer=np.int64(self.layer),
                model_name=np.str_(self.model_name),
                sha256=np.str_(self.sha256),
                n_train=np.int64(self.n_train),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Codebook":
        """Read a codebook npz; fail if its centroids do not match the stored sha256 or shape."""
        with np.load(path, allow_pickle=False) as npz:
            try:
                codebook = cls(
                    centroids=np.asarray(npz["centroids"], dtype=np.float32),
                    model_name=str(npz["model_name"]),
                    layer=int(npz["layer"]),
                    seed=int(npz["seed"]),
                    n_train=int(npz["n_train"]),
                )
                stored_sha, stored_shape = str(npz["sha256"]), (int(npz["k"]), int(npz["dim"]))
            except KeyError as missing:
                raise ValueError(f"{path}: codebook npz lacks {missing}") from None
        if codebook.sha256 != stored_sha:
            raise ValueError(f"{path}: centroids sha256 {codebook.sha256} != stored {stored_sha} (corrupt codebook)")
        if (codebook.k, codebook.dim) != stored_shape:
            raise ValueError(f"{path}: centroids shape {codebook.centroids.shape} != stored k, dim {stored_shape}")
        return codebook


def assign(X: np.ndarray, centroids: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
    """Nearest centroid (squared Euclidean) of every row of ``X``, as uint16.

    Computed by :func:`assign_torch` on the CPU, so tokens from stored embeddings and tokens from
    the one-pass GPU mode (`keep_embeddings: false`) come from the same arithmetic.
    """
    import torch

    centroids = np.asarray(centroids, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != centroids.shape[1]:
        raise ValueError(f"embeddings of shape {X.shape} do not match centroids of shape {centroids.shape}")
    if centroids.shape[0] > MAX_K:
        raise ValueError(f"{centroids.shape[0]} centroids do not fit uint16 tokens (at most {MAX_K})")
    tokens = assign_torch(torch.from_numpy(np.asarray(X)), torch.from_numpy(centroids), chunk_rows)
    return tokens.numpy().astype(np.uint16)


def assign_torch(X, centroids, chunk_rows: int = 65536):
    """Nearest centroid of every row of tensor ``X`` on its device; int64 indices on that device.

    ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``; the ``||x||^2`` term is the same for every
    centroid of a row, so the argmin uses ``||c||^2 - 2 x.c`` in float32, ``chunk_rows`` at a time.
    """
    import torch

    centroids = centroids.to(device=X.device, dtype=torch.float32)
    centroid_sq = (centroids * centroids).sum(dim=1)
    if len(X) == 0:
        return torch.empty(0, dtype=torch.int64, device=X.device)
    return torch.cat([
        torch.argmin(centroid_sq - 2.0 * (X[start:start + chunk_rows].to(torch.float32) @ centroids.T), dim=1)
        for start in range(0, len(X), chunk_rows)
    ])


def mean_squared_error(X: np.ndarray, centroids: np.ndarray, tokens: np.ndarray) -> float:
    """Mean over rows of the squared Euclidean distance to the assigned centroid (NaN if no rows)."""
    if len(X) == 0:
        return math.nan
    residual = np.asarray(X, dtype=np.float32) - np.asarray(centroids, dtype=np.float32)[tokens]
    return float(np.einsum("ij,ij->i", residual, residual).mean())


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


def train_codebook_from_shards(
    embedding_paths: Sequence[str | os.PathLike],
    out_npz: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    k: int,
    seed: int,
    sample_per_shard: int,
    max_train_residues: int,
    holdout_fraction: float,
    batch_size: int,
    max_iter: int,
) -> Codebook:
    """Sample residues from every shard, train the codebook, write it and a training JSON."""
    train, heldout, info = sample_residues(embedding_paths, per_shard=sample_per_shard,
                                           max_total=max_train_residues,
                                           holdout_fraction=holdout_fraction, seed=seed)
    codebook, stats = train_codebook(train, k=k, seed=seed, batch_size=batch_size, max_iter=max_iter,
                                     model_name=info["model_name"], layer=info["layer"])
    heldout_mse = mean_squared_error(heldout, codebook.centroids, assign(heldout, codebook.centroids))
    training = {
        "k": k, "dim": codebook.dim, "seed": seed, "model_name": codebook.model_name, "layer": codebook.layer,
        "n_shards": info["n_shards"], "n_train": info["n_train"], "n_heldout": info["n_heldout"],
        "n_train_proteins": info["n_train_proteins"], "n_heldout_proteins": info["n_heldout_proteins"],
        "holdout_fraction": holdout_fraction, "per_shard_quota": info["per_shard_quota"],
        "batch_size": batch_size, "max_iter": max_iter, **stats,
        "train_mse": mean_squared_error(train, codebook.centroids, assign(train, codebook.centroids)),
        "heldout_mse": None if math.isnan(heldout_mse) else heldout_mse,
        "codebook_sha256": codebook.sha256,
    }
    codebook.save(out_npz)
    with atomic_output(out_json) as tmp:
        Path(tmp).write_text(json.dumps(training, indent=2) + "\n")
    return codebook
