"""Nearest-centroid assignment: the project's `assign` against a plain float32 matmul + argmin.

The input is what `tokenize` gets: float16 embeddings of one shard (`--rows` x `--dim`) and a
float32 codebook of `--k` centroids. The plain baseline is handed float32 embeddings (cast before
the clock starts) and computes ``argmin(||c||^2 - 2 x.c)`` in one chunked torch matmul; the project
function starts from the float16 array, as it does in the pipeline. Same data, same threads, one
run; the median of `--repeats` is reported.

    python benchmarks/assign.py --rows 450000 --dim 1280 --k 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402

from structure_tokens.codebook.assign import assign  # noqa: E402


def plain(X32: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """The reference: float32 input, one matmul per chunk, argmin."""
    centroid_sq = (centroids * centroids).sum(dim=1)
    return torch.cat([torch.argmin(centroid_sq - 2.0 * (X32[s:s + chunk] @ centroids.T), dim=1)
                      for s in range(0, len(X32), chunk)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=450_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X16 = rng.standard_normal((args.rows, args.dim), dtype=np.float32).astype(np.float16)
    centroids = rng.standard_normal((args.k, args.dim), dtype=np.float32)
    X32 = torch.from_numpy(X16.astype(np.float32))
    C = torch.from_numpy(centroids)
    base, reference = median_seconds(lambda: plain(X32, C), args.repeats)
    ours, tokens = median_seconds(lambda: assign(X16, centroids), args.repeats)
    flops = 2 * args.rows * args.dim * args.k
    same = np.mean(tokens == reference.numpy().astype(np.uint16))
    print(f"{args.rows} x {args.dim} float16 vs {args.k} centroids, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"plain float32 matmul + argmin (input already float32): {base:.2f} s ({flops / base / 1e9:.0f} GFLOP/s)")
    print(f"project assign (from float16): {ours:.2f} s ({flops / ours / 1e9:.0f} GFLOP/s) = "
          f"{ours / base:.2f}x the plain time; same token for {same:.4%} of rows")


if __name__ == "__main__":
    main()
