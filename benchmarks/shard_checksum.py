"""Cost of the shard checksums on one large embedding shard: HDF5's Fletcher-32 filter against no
checksum, and against a sha256 of the same bytes (the alternative: a digest attribute per dataset).

Writes ``--gib`` GiB of float16 embeddings (``--dim`` wide, in CHUNK_ROWS-row chunks as
``EmbeddingWriter`` stores them) to an HDF5 dataset with and without the filter, reads each back in
full, and hashes the same array with sha256; also times ``formats.embeddings.verify`` (the full check
of a whole shard file written by ``EmbeddingWriter``). Median of ``--repeats`` runs, page cache warm
(the file was just written), so the numbers are CPU cost, not disk speed.

    python benchmarks/shard_checksum.py              # 1 GiB, dim 1280 (esm2_t33_650M)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402

from structure_tokens.formats.checksums import LIBVER  # noqa: E402
from structure_tokens.formats.embeddings import CHUNK_ROWS, EmbeddingWriter, verify  # noqa: E402

BLOCK_ROWS = 65536


def write(path: Path, data: np.ndarray, fletcher32: bool) -> None:
    with h5py.File(path, "w", libver=LIBVER) as h5:
        dataset = h5.create_dataset("embeddings", shape=data.shape, dtype=data.dtype, fletcher32=fletcher32,
                                    chunks=(CHUNK_ROWS, data.shape[1]))
        for start in range(0, len(data), BLOCK_ROWS):
            dataset[start:start + BLOCK_ROWS] = data[start:start + BLOCK_ROWS]


def read(path: Path) -> None:
    with h5py.File(path, "r") as h5:
        dataset = h5["embeddings"]
        for start in range(0, len(dataset), BLOCK_ROWS):
            dataset[start:start + BLOCK_ROWS]


def write_shard(path: Path, data: np.ndarray, protein_length: int) -> None:
    """The same values as a shard of ``protein_length``-residue proteins, through EmbeddingWriter."""
    n = len(data) // protein_length
    with EmbeddingWriter(path, proteins=[(f"P{i}", f"{i:064x}", "") for i in range(n)], embed_dim=data.shape[1],
                         attrs={"model_name": "bench", "layer": 1}) as writer:
        for i in range(n):
            writer.add(f"P{i}", data[i * protein_length:(i + 1) * protein_length])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="where the test files go (default: a temp dir)")
    args = parser.parse_args()
    rows = int(args.gib * 2**30) // (2 * args.dim)
    data = np.random.default_rng(0).standard_normal((rows, args.dim)).astype(np.float16)
    mib = data.nbytes / 2**20
    print(f"{rows} rows x {args.dim} float16 = {mib:.0f} MiB; median of {args.repeats} runs, page cache warm")
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        results = {}
        for fletcher32 in (False, True):
            path = Path(folder) / f"fletcher32_{fletcher32}.h5"
            results[f"write, fletcher32={fletcher32}"], _ = median_seconds(lambda: write(path, data, fletcher32),
                                                                          args.repeats)
            results[f"read, fletcher32={fletcher32}"], _ = median_seconds(lambda: read(path), args.repeats)
            path.unlink()
        results["sha256 of the array"], _ = median_seconds(lambda: hashlib.sha256(data).digest(), args.repeats)
        shard = Path(folder) / "shard_00000.h5"
        write_shard(shard, data, protein_length=512)
        results["embeddings.verify (whole shard file)"], _ = median_seconds(lambda: verify(shard), args.repeats)
    print(f"| {'step':<40} | {'s':>6} | {'MiB/s':>6} |\n|{'-' * 42}|{'-' * 8}|{'-' * 8}|")
    for name, seconds in results.items():
        print(f"| {name:<40} | {seconds:6.2f} | {mib / seconds:6.0f} |")
    for step in ("write", "read"):
        extra = results[f"{step}, fletcher32=True"] - results[f"{step}, fletcher32=False"]
        print(f"Fletcher-32 adds {extra:.2f} s per {args.gib:g} GiB to a {step}")


if __name__ == "__main__":
    main()
