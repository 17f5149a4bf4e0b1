"""Nearest-centroid assignment of embeddings to a codebook, and the quantization error."""

from __future__ import annotations

import math
import os

import numpy as np

from structure_tokens.formats.codebook import MAX_K, Codebook
from structure_tokens.formats.embeddings import EmbeddingShard


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


TIE_TOLERANCE = 1e-4  # float32 score gaps below this fraction of the row's scale are re-checked in float64


def assign_torch(X, centroids, chunk_rows: int = 65536):
    """Nearest centroid of every row of tensor ``X`` on its device; int64 indices on that device.

    ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``; the ``||x||^2`` term is the same for every
    centroid of a row, so the argmin uses ``||c||^2 - 2 x.c`` in float32, ``chunk_rows`` at a time.
    Rows whose two best scores differ by less than :data:`TIE_TOLERANCE` of
    ``||x||^2 + max ||c||^2`` are decided again in float64 (float32 scores were measured within
    1e-6 of that scale of the float64 ones, docs/benchmarks.md), so in practice the token does not
    depend on the device, the BLAS library or the thread count that summed the matmul: one-pass
    tokens from a GPU equal tokens assigned on a CPU from the stored embeddings. Exact float64 ties
    (duplicate centroids) go to the lower index.
    """
    import torch

    centroids = centroids.to(device=X.device, dtype=torch.float32)
    centroid_sq = (centroids * centroids).sum(dim=1)
    if len(X) == 0:
        return torch.empty(0, dtype=torch.int64, device=X.device)
    return torch.cat([_nearest(X[start:start + chunk_rows], centroids, centroid_sq)
                      for start in range(0, len(X), chunk_rows)])


def _nearest(chunk, centroids, centroid_sq):
    """Nearest centroid of each row of ``chunk``: float32 scores, near-ties decided in float64."""
    import torch

    rows = chunk.to(torch.float32)
    scores = _scores(rows, centroids, centroid_sq)
    if len(centroids) < 2:
        return torch.argmin(scores, dim=1)
    first, tokens = torch.min(scores, dim=1)
    scores[torch.arange(len(scores), device=scores.device), tokens] = torch.inf
    second = torch.amin(scores, dim=1)
    scale = (rows * rows).sum(dim=1) + centroid_sq.max()
    near = torch.nonzero(second - first <= TIE_TOLERANCE * scale).flatten()
    if len(near):
        exact = rows[near].double()
        centroids64 = centroids.double()
        distances = (centroids64 * centroids64).sum(dim=1) - 2.0 * (exact @ centroids64.T)
        tokens[near] = torch.argmin(distances, dim=1)
    return tokens


def assign_torch_with_distances(X, centroids, chunk_rows: int = 65536):
    """Nearest centroid of every row as float32 scores order it (no float64 re-check of near-ties: for
    k-means training, not tokens) and its squared distance (float64), from the same matmul: the
    row's minimum score plus ``||x||^2``, clamped at 0 against rounding."""
    import torch

    centroids = centroids.to(device=X.device, dtype=torch.float32)
    centroid_sq = (centroids * centroids).sum(dim=1)
    tokens, distances = [], []
    for start in range(0, len(X), chunk_rows):
        chunk = X[start:start + chunk_rows].to(torch.float32)
        best, index = torch.min(_scores(chunk, centroids, centroid_sq), dim=1)
        tokens.append(index)
        distances.append(((chunk * chunk).sum(dim=1) + best).clamp(min=0))
    return torch.cat(tokens), torch.cat(distances).double()


def _scores(chunk, centroids, centroid_sq):
    """``||c||^2 - 2 x.c`` for every row of ``chunk`` and every centroid, in float32."""
    import torch

    return centroid_sq - 2.0 * (chunk.to(torch.float32) @ centroids.T)


def mean_squared_error(X: np.ndarray, centroids: np.ndarray, tokens: np.ndarray) -> float:
    """Mean over rows of the squared Euclidean distance to the assigned centroid (NaN if no rows)."""
    if len(X) == 0:
        return math.nan
    residual = np.asarray(X, dtype=np.float32) - np.asarray(centroids, dtype=np.float32)[tokens]
    return float(np.einsum("ij,ij->i", residual, residual).mean())


def check_codebook_matches(embedding_h5: str | os.PathLike, shard: EmbeddingShard,
                           codebook_npz: str | os.PathLike, codebook: Codebook) -> None:
    """Fail unless the shard's model, layer and dim are those the codebook was trained on."""
    shard.provenance.require_match(codebook.provenance, embedding_h5, f"codebook {codebook_npz}")
