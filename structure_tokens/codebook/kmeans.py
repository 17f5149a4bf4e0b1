"""The k-means trainer of the codebook (scikit-learn MiniBatchKMeans).

A trainer turns a float32 residue sample into a :class:`Codebook` and fit statistics; adding
another algorithm means adding a function like :func:`train_codebook` here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from typing import Any, Callable

import numpy as np

from structure_tokens.formats.codebook import MAX_K, Codebook

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
    with contextlib.redirect_stdout(FitLog()):  # scikit-learn prints its progress
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size,
                                max_iter=max_iter, n_init=3, verbose=1).fit(X)
    codebook = Codebook(centroids=model.cluster_centers_.astype(np.float32), model_name=model_name,
                        layer=layer, seed=seed, n_train=len(X))
    stats = {"inertia": float(model.inertia_), "iterations": int(model.n_iter_),
             "minibatch_steps": int(model.n_steps_), "seconds": time.perf_counter() - started}
    return codebook, stats
