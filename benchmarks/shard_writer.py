"""Host time the embedding loop spends writing one shard: synchronous batch writes vs the writer thread.

A shard of `--proteins` proteins × `--length` residues × `--dim` float16 values is written through
`EmbeddingWriter` as the `embed` rule does (a batch file every `--flush-rows` rows, then the HDF5
file), while a stand-in forward pass takes `--compute-ms` per batch (a sleep: the GPU's time, when
the host is free). Reported: wall time of the loop and of finalising, both ways, on the same data.

    python benchmarks/shard_writer.py                      # 1000 x 512 x 1280: a 650M shard of 512k residues
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structure_tokens.formats.embeddings import EmbeddingWriter  # noqa: E402


def run(folder: Path, args: argparse.Namespace, synchronous: bool) -> tuple[float, float]:
    """(loop seconds, finalise seconds) of one shard."""
    block = np.random.default_rng(0).standard_normal((args.length, args.dim)).astype(np.float16)
    proteins = [(f"p{i}", f"h{i}", "") for i in range(args.proteins)]
    writer = EmbeddingWriter(folder / "shard_00000.h5", proteins=proteins, embed_dim=args.dim,
                             attrs={"model_name": "bench", "layer": 1}, flush_rows=args.flush_rows)
    per_batch = max(1, args.flush_rows // args.length)
    start = time.perf_counter()
    for i, (protein_id, _, _) in enumerate(proteins):
        if i % per_batch == 0:
            time.sleep(args.compute_ms / 1000)  # the forward pass of the next batch
        writer.add(protein_id, block)
        if synchronous and not writer._pending:  # the old behaviour: wait for each batch file
            writer.flush(wait=True)
    loop = time.perf_counter() - start
    start = time.perf_counter()
    writer.finalise()
    return loop, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proteins", type=int, default=1000)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--flush-rows", type=int, default=16384, help="model.token_budget")
    parser.add_argument("--compute-ms", type=float, default=65.0,
                        help="stand-in GPU time per batch (16k tokens at ~250k residues/s)")
    args = parser.parse_args()
    rows = args.proteins * args.length
    print(f"shard: {args.proteins} proteins x {args.length} residues x {args.dim} float16 "
          f"({rows * args.dim * 2 / 2**30:.2f} GiB), batch every {args.flush_rows} rows, "
          f"{args.compute_ms:.0f} ms stand-in compute per batch")
    batches = -(-args.proteins // max(1, args.flush_rows // args.length))
    print(f"stand-in compute alone: {batches * args.compute_ms / 1000:.2f} s ({batches} batches)")
    for label, synchronous in (("synchronous writes (before)", True), ("writer thread (after)", False)):
        with tempfile.TemporaryDirectory() as folder:
            loop, final = run(Path(folder), args, synchronous)
        print(f"{label}: loop {loop:.2f} s, finalise {final:.2f} s, total {loop + final:.2f} s")


if __name__ == "__main__":
    main()
