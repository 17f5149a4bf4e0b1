"""Progress of one shard's embedding: a log line at a bounded rate, and the numbers for a JSON file.

A line is logged when ``every_s`` seconds have passed or another ``every_fraction`` of the shard's
residues is done, whichever comes first, and once at the end: proteins and residues done of the
total, residues/s, padding fraction, the batch budget, peak GPU memory on CUDA and an ETA.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any, Callable, Protocol

import torch


class EmbedderCounters(Protocol):
    """What progress reads of an ``embed.embedder.Embedder``."""

    device: torch.device
    dtype: torch.dtype
    max_batch_tokens: int
    oom_splits: int
    tokens_run: int
    real_tokens_run: int


class ShardProgress:
    """Counts what an embedder finished in one shard; see the module docstring."""

    def __init__(self, name: str, embedder: EmbedderCounters, *, n_proteins: int, n_residues: int,
                 log: logging.Logger, every_s: float = 30.0, every_fraction: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.embedder, self.log, self.clock = name, embedder, log, clock
        self.n_proteins, self.n_residues = n_proteins, n_residues
        self.every_s, self.every_fraction = every_s, every_fraction
        self.proteins = self.residues = 0
        self.start = self.last_logged = clock()
        self.last_fraction = 0.0
        self.samples: list[dict[str, float]] = []  # one per logged line: seconds, residues

    def add(self, proteins: int, residues: int) -> None:
        """Count finished proteins and residues; log when it is time."""
        self.proteins += proteins
        self.residues += residues
        now = self.clock()
        fraction = self.residues / self.n_residues if self.n_residues else 1.0
        if now - self.last_logged >= self.every_s or fraction - self.last_fraction >= self.every_fraction:
            self._log(now, fraction)

    def finish(self) -> dict[str, Any]:
        """Log the final line; return the shard's throughput numbers (for the per-shard JSON)."""
        now = self.clock()
        self._log(now, self.residues / self.n_residues if self.n_residues else 1.0)
        seconds = now - self.start
        return {"shard": self.name, "proteins": self.proteins, "residues": self.residues,
                "seconds": round(seconds, 3),
                "residues_per_s": round(self.residues / seconds, 1) if seconds > 0 else None,
                "padding_fraction": self.padding_fraction(), "device": str(self.embedder.device),
                "dtype": str(self.embedder.dtype).removeprefix("torch."),
                "batch_token_budget": self.embedder.max_batch_tokens, "oom_splits": self.embedder.oom_splits,
                "peak_gpu_memory_gib": self.gpu_memory_gib(), "progress": self.samples}

    def padding_fraction(self) -> float | None:
        """Share of the forward passes' tokens that were padding (BOS/EOS count as real)."""
        total = self.embedder.tokens_run
        return round(1 - self.embedder.real_tokens_run / total, 4) if total else None

    def gpu_memory_gib(self) -> float | None:
        if self.embedder.device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated(self.embedder.device) / 2**30, 2)

    def _log(self, now: float, fraction: float) -> None:
        seconds = now - self.start
        rate = self.residues / seconds if seconds > 0 else 0.0
        eta = (self.n_residues - self.residues) / rate if rate > 0 else None
        padding = self.padding_fraction()
        memory = self.gpu_memory_gib()
        self.log.info(
            "%s: %d/%d proteins, %d/%d residues (%.0f%%), %.0f residues/s, padding %s, batch budget %d tokens%s, "
            "ETA %s", self.name, self.proteins, self.n_proteins, self.residues, self.n_residues, 100 * fraction,
            rate, "n/a" if padding is None else f"{100 * padding:.1f}%", self.embedder.max_batch_tokens,
            "" if memory is None else f", GPU memory peak {memory:.1f} GiB",
            "n/a" if eta is None else datetime.timedelta(seconds=round(eta)))
        self.samples.append({"seconds": round(seconds, 3), "residues": self.residues})
        self.last_logged, self.last_fraction = now, fraction
