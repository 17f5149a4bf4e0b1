"""The ``codebook:`` config section: light to import, so the workflow checks it when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from structure_tokens.formats.codebook import MAX_K
from structure_tokens.options import FromConfig

BACKENDS = ("faiss", "sklearn", "torch")  # k-means implementations (codebook.kmeans.train_codebook)


@dataclass(frozen=True)
class CodebookOptions(FromConfig):
    """The ``codebook:`` config section: codebook size, training sample and k-means fit."""

    k: int = 512
    seed: int = 0
    train_shards: int | None = None
    sample_per_shard: int = 20000
    max_train_residues: int = 1_000_000
    holdout_fraction: float = 0.1
    batch_size: int = 4096
    max_iter: int = 100
    backend: str = "faiss"

    def __post_init__(self) -> None:
        if not 2 <= self.k <= MAX_K:
            raise ValueError(f"codebook.k must be between 2 and {MAX_K} (uint16 tokens), got {self.k}")
        if self.max_train_residues < self.k:
            raise ValueError(f"codebook.max_train_residues ({self.max_train_residues}) is below codebook.k "
                             f"({self.k}): k-means needs at least k training residues")
        if self.backend not in BACKENDS:
            raise ValueError(f"codebook.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"codebook.holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
