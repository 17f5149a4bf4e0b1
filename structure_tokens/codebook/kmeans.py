"""The k-means trainers of the codebook: ``torch`` and ``faiss`` (k-means++ then Lloyd) and ``sklearn``
(MiniBatchKMeans).

:func:`train_codebook` turns a float32 residue sample into a :class:`Codebook` and fit statistics
with the backend named in ``codebook.backend``; adding an algorithm means adding a ``_fit_<name>``
function here, to ``FITS`` and its name to ``codebook.options.BACKENDS``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import time
from typing import Any, Callable

import numpy as np

from structure_tokens.codebook.assign import assign_torch_with_distances
from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.provenance import Provenance

log = logging.getLogger(__name__)
STEP = re.compile(r"Minibatch step (\d+)/(\d+): mean batch inertia: (\S+), ewa inertia: (\S+)")


class FitLog(io.TextIOBase):
    """scikit-learn's verbose k-means output as log lines at a bounded rate.

    Every init and its inertia, and the convergence message, are logged; of the per-step lines
    only one every ``every_s`` seconds or 10% of the steps, with the elapsed time.
    """

    def __init__(self, logger: logging.Logger = log, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self.start = self.last = clock()
        self.last_decile = -1
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in filter(None, (line.strip() for line in lines)):
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        now = self.clock()
        step = STEP.fullmatch(line)
        if step is None:
            self.logger.info("k-means: %s (%.1f s)", line, now - self.start)
            return
        done, total = int(step.group(1)), int(step.group(2))
        decile = 10 * done // total
        if now - self.last >= self.every_s or decile > self.last_decile:
            self.logger.info("k-means step %d/%d (%.0f%%): mean batch inertia %.6g, ewa inertia %.6g (%.1f s)",
                             done, total, 100 * done / total, float(step.group(3)), float(step.group(4)),
                             now - self.start)
            self.last, self.last_decile = now, decile


INIT_SAMPLE_PER_CODE = 32  # k-means++ (torch, faiss) picks its seeds from 32 x k sampled residues
LLOYD_TOLERANCE = 5e-3  # torch, faiss: stop when an iteration lowers the inertia by less than this fraction
FAISS_SAMPLE_PER_CODE = 256  # faiss: Lloyd iterations on 256 x k residues of the sample (faiss's own default)
CHUNK_ROWS = 65536


def train_codebook(X: np.ndarray, options: CodebookOptions,
                   provenance: Provenance) -> tuple[Codebook, dict[str, Any]]:
    """Fit k-means with ``options.k`` centroids on ``X``; return the codebook and fit statistics.

    ``options`` (validated when built) gives ``k``, ``seed``, ``backend``, ``batch_size`` and
    ``max_iter``; ``provenance`` (model, layer, dim of the embeddings ``X``) is kept in the codebook.

    ``sklearn``: MiniBatchKMeans (k-means++, 3 seeded inits, mini-batches of ``batch_size``,
    ``max_iter`` epochs). ``torch``: k-means++ on a seeded sample, then full Lloyd iterations
    (float32 distances; centroid sums in float32 per 65,536 rows, accumulated in float64) until an
    iteration improves the inertia by less than :data:`LLOYD_TOLERANCE`, or ``max_iter``; on CUDA
    when the job has a GPU. ``faiss``: the same k-means++ seeds, then faiss's Lloyd iterations on a
    seeded subsample of :data:`FAISS_SAMPLE_PER_CODE` x ``k`` residues, on the CPU; faiss reports the
    inertia before each update, so the same rule stops it one update later. All write the same
    codebook file; ``stats["inertia"]`` is the sum of squared distances over ``X``.
    """
    k, seed, backend = options.k, options.seed, options.backend
    if len(X) < k:
        raise ValueError(f"only {len(X)} sampled residues to train k={k} centroids; "
                         "sample more residues (codebook.sample_per_shard / max_train_residues) or lower k")
    X = np.asarray(X, dtype=np.float32)
    started = time.perf_counter()
    centroids, stats = FITS[backend](X, k=k, seed=seed, batch_size=options.batch_size, max_iter=options.max_iter)
    codebook = Codebook.trained(centroids, provenance, seed=seed, n_train=len(X))
    return codebook, {"backend": backend, **stats, "seconds": time.perf_counter() - started}


def _fit_sklearn(X: np.ndarray, *, k: int, seed: int, batch_size: int, max_iter: int) -> tuple[np.ndarray, dict]:
    from sklearn.cluster import MiniBatchKMeans  # here, not at the top: tokenizing needs only torch

    with contextlib.redirect_stdout(FitLog()):  # scikit-learn prints its progress
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size,
                                max_iter=max_iter, n_init=3, verbose=1).fit(X)
    return model.cluster_centers_.astype(np.float32), {
        "inertia": float(model.inertia_), "iterations": int(model.n_iter_), "minibatch_steps": int(model.n_steps_)}


def _fit_torch(X: np.ndarray, *, k: int, seed: int, batch_size: int, max_iter: int) -> tuple[np.ndarray, dict]:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(X).to(device)
    sample = data[torch.randperm(len(X), generator=generator)[:INIT_SAMPLE_PER_CODE * k].to(device)]
    centroids = _kmeans_plus_plus(sample, k, generator)
    started, iterations = time.monotonic(), 0
    tokens, distances = assign_torch_with_distances(data, centroids, CHUNK_ROWS)
    for iterations in range(1, max_iter + 1):
        inertia = float(distances.sum())
        sums = torch.zeros((k, data.shape[1]), dtype=torch.float64, device=device)
        chunk_sums = torch.empty((k, data.shape[1]), dtype=torch.float32, device=device)
        for start in range(0, len(data), CHUNK_ROWS):  # float32 sums per chunk, accumulated in float64
            chunk_sums.zero_().index_add_(0, tokens[start:start + CHUNK_ROWS], data[start:start + CHUNK_ROWS])
            sums += chunk_sums
        counts = torch.bincount(tokens, minlength=k)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, (sums / counts.clamp(min=1)[:, None]).float())
        if empty.any():  # an empty code takes the residues farthest from their centroid
            centroids[empty] = data[torch.topk(distances, int(empty.sum())).indices]
        tokens, distances = assign_torch_with_distances(data, centroids, CHUNK_ROWS)
        new_inertia = float(distances.sum())
        log.info("k-means (torch) iteration %d: inertia %.6g, %d empty codes refilled (%.1f s)", iterations,
                 new_inertia, int(empty.sum()), time.monotonic() - started)
        if inertia - new_inertia <= LLOYD_TOLERANCE * inertia:
            break
    return centroids.cpu().numpy(), {"inertia": float(distances.sum()), "iterations": iterations,
                                     "device": device.type, "init_sample": len(sample)}


def _fit_faiss(X: np.ndarray, *, k: int, seed: int, batch_size: int, max_iter: int) -> tuple[np.ndarray, dict]:
    # faiss probes its CPU-specific builds on import and logs each missing one at INFO: not errors
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(X), generator=generator)
    centroids = _kmeans_plus_plus(torch.from_numpy(X)[order[:INIT_SAMPLE_PER_CODE * k]], k, generator).numpy()
    train = X[np.sort(order[:FAISS_SAMPLE_PER_CODE * k].numpy())]
    kmeans = faiss.Kmeans(X.shape[1], k, niter=1, seed=seed, max_points_per_centroid=len(train), verbose=False)
    started, iterations, previous = time.monotonic(), 0, None
    for iterations in range(1, max_iter + 1):  # one Lloyd step per call: each logged, stopped by our rule
        kmeans.train(train, init_centroids=centroids)
        centroids, objective = kmeans.centroids, float(kmeans.obj[-1])  # obj: inertia before the update
        log.info("k-means (faiss) iteration %d: subsample inertia %.6g (%.1f s)", iterations, objective,
                 time.monotonic() - started)
        if previous is not None and previous - objective <= LLOYD_TOLERANCE * previous:
            break
        previous = objective
    _, distances = assign_torch_with_distances(torch.from_numpy(X), torch.from_numpy(centroids), CHUNK_ROWS)
    return centroids.copy(), {"inertia": float(distances.double().sum()), "iterations": iterations,
                              "device": "cpu", "init_sample": min(len(X), INIT_SAMPLE_PER_CODE * k),
                              "lloyd_sample": len(train)}


def _kmeans_plus_plus(sample, k: int, generator) -> Any:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; 2 + log k candidates per step, as scikit-learn)."""
    import torch

    trials = 2 + int(math.log(k))
    squared_norms = (sample * sample).sum(dim=1)
    first = int(torch.randint(len(sample), (1,), generator=generator))
    centroids = [sample[first]]
    closest = ((sample - sample[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        weights = (closest / closest.sum()).cpu().double()
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator).to(sample.device)
        # squared distances of every sample point to each candidate, (trials, n), by one matmul
        distances = (squared_norms[candidates, None] - 2 * sample[candidates] @ sample.T + squared_norms).clamp(min=0)
        options = torch.minimum(closest[None, :], distances)
        best = int(options.sum(dim=1).argmin())
        closest = options[best]
        centroids.append(sample[candidates[best]])
    return torch.stack(centroids).float()


FITS = {"faiss": _fit_faiss, "sklearn": _fit_sklearn, "torch": _fit_torch}  # batch_size: sklearn only
