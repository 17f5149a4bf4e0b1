"""Codebook training backends on the same residue sample: time and inertia.

The sample stands in for ESM-2 embeddings: `--n` points in `--dim` dimensions drawn around
`--modes` Gaussian centres of varied spread (no real model here). Every backend fits K=`--k`
centroids with the pipeline's settings (`train_codebook`, seed 0); inertia is recomputed the same
way for all (sum of squared distances to the nearest centroid, float64). One run, this machine.

    python benchmarks/codebook.py --n 200000 1000000 --backends sklearn torch
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structure_tokens.codebook.assign import assign_torch  # noqa: E402
from structure_tokens.codebook.kmeans import train_codebook  # noqa: E402
from structure_tokens.codebook.options import CodebookOptions  # noqa: E402
from structure_tokens.formats.provenance import Provenance  # noqa: E402


def sample(n: int, dim: int, modes: int, seed: int = 0) -> np.ndarray:
    """``n`` points around ``modes`` centres, each mode with its own spread (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((modes, dim), dtype=np.float32) * 3
    spread = rng.uniform(0.5, 2.0, size=modes).astype(np.float32)
    labels = rng.integers(0, modes, size=n)
    points = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        part = labels[start:start + 65536]
        points[start:start + 65536] = centres[part] + rng.standard_normal((len(part), dim), dtype=np.float32) * \
            spread[part, None]
    return points


def inertia(X: np.ndarray, centroids: np.ndarray) -> float:
    data, c = torch.from_numpy(X), torch.from_numpy(centroids)
    tokens = assign_torch(data, c)
    return float(sum(((data[s:s + 65536] - c[tokens[s:s + 65536]]).double() ** 2).sum()
                     for s in range(0, len(data), 65536)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--modes", type=int, default=2048)
    parser.add_argument("--backends", nargs="+", default=["sklearn", "torch"])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; K={args.k}, dim {args.dim}, "
          f"{args.modes} modes")
    for n in args.n:
        X = sample(n, args.dim, args.modes)
        results = {}
        for backend in args.backends:
            start = time.perf_counter()
            options = CodebookOptions(k=args.k, batch_size=args.batch_size, max_iter=args.max_iter, backend=backend)
            codebook, stats = train_codebook(X, options, Provenance("bench", 0, args.dim))
            seconds = time.perf_counter() - start
            results[backend] = (seconds, inertia(X, codebook.centroids), stats.get("iterations"))
        reference = results.get("sklearn", next(iter(results.values())))[1]
        for backend, (seconds, value, iterations) in results.items():
            print(f"n={n}: {backend:8s} {seconds:7.1f} s, inertia {value:.6g} ({value / reference:.4f}x sklearn), "
                  f"iterations {iterations}")


if __name__ == "__main__":
    main()
