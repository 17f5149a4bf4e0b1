"""Start-up cost of the workflow's damaged-shard check at 1,000 and 10,000 shards.

``rules/common.smk`` calls ``structure_tokens.formats.integrity.damaged_shard_files`` whenever the
workflow is parsed in the main process: every run, ``-n``, ``--lint``. This writes ``--shards``
synthetic token shards with the project's ``TokenWriter`` (``--proteins`` proteins in all, of
``--length`` residues: 1M x 300 is about 600 MB of tokens), then times that function:

- ``recorded``: every file has the record its writer left, the normal case after a run (one
  ``stat`` and one small JSON read per file);
- ``full``: no records (a copied output folder; or every file changed): every file read and every
  checksum verified, after which the records are written, so the next check is ``recorded``;

each with the page cache warm, and cold: the cached pages of every shard and record file dropped
with ``posix_fadvise(DONTNEED)`` first (after a ``sync``). The kernel's inode and directory caches
stay warm (only root can drop them), so on a cold network file system each ``stat`` and record read
costs a round trip more than here.

    python benchmarks/parse_time.py                      # 1,000 and 10,000 shards of 1M proteins
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structure_tokens.formats.checksums import record_path  # noqa: E402
from structure_tokens.formats.codebook import Codebook  # noqa: E402
from structure_tokens.formats.integrity import damaged_shard_files  # noqa: E402
from structure_tokens.formats.tokens import TokenWriter  # noqa: E402

K = 1024


def write_shards(out: Path, n_shards: int, n_proteins: int, length: int) -> None:
    """``out/tokens/shard_*.h5``: ``n_proteins`` proteins of random tokens spread over ``n_shards`` files."""
    codebook = Codebook(np.zeros((K, 4), dtype=np.float32), model_name="bench", layer=1, seed=0, n_train=1)
    rng = np.random.default_rng(0)
    per_shard = n_proteins // n_shards
    tokens = rng.integers(0, K, per_shard * length).astype(np.uint16)
    for shard in range(n_shards):
        proteins = [(f"UniRef50_S{shard:05d}P{i:05d}", f"{shard:032x}{i:032x}", "") for i in range(per_shard)]
        with TokenWriter(out / "tokens" / f"shard_{shard:05d}.h5", proteins, codebook, {},
                         flush_rows=len(tokens)) as writer:
            for i, (protein_id, _, _) in enumerate(proteins):
                writer.add(protein_id, tokens[i * length:(i + 1) * length])


def drop_cached_pages(out: Path) -> None:
    """Evict the page-cache pages of every shard and record file (inode and dentry caches stay)."""
    os.sync()
    for path in (out / "tokens").rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed_check(out: Path) -> float:
    start = time.perf_counter()
    damaged = damaged_shard_files(out)
    seconds = time.perf_counter() - start
    assert not damaged, damaged
    return seconds


def measure(out: Path, n_shards: int) -> dict[str, float]:
    """Seconds of the check: recorded and full, warm and cold."""
    records = out / "tokens" / ".verified"
    assert len(list(records.iterdir())) == n_shards and record_path(out / "tokens/shard_00000.h5").exists()
    times = {}
    timed_check(out)  # warm the page cache
    times["recorded, warm"] = timed_check(out)
    drop_cached_pages(out)
    times["recorded, cold"] = timed_check(out)
    for cache in ("cold", "warm"):
        shutil.rmtree(records)
        if cache == "cold":
            drop_cached_pages(out)
        else:
            for path in (out / "tokens").glob("shard_*.h5"):
                path.read_bytes()
        times[f"full, {cache}"] = timed_check(out)
        assert len(list(records.iterdir())) == n_shards  # recorded by the check
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--proteins", type=int, default=1_000_000, help="in all shards together")
    parser.add_argument("--length", type=int, default=300, help="residues per protein")
    parser.add_argument("--workdir", type=Path, default=None, help="where the shards go (default: a temp dir)")
    args = parser.parse_args()
    rows = []
    for n_shards in args.shards:
        with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
            out = Path(folder)
            start = time.perf_counter()
            write_shards(out, n_shards, args.proteins, args.length)
            size = sum(p.stat().st_size for p in (out / "tokens").glob("shard_*.h5"))
            print(f"{n_shards} shards, {args.proteins // n_shards} proteins x {args.length} residues each: "
                  f"{size / 2**20:.0f} MiB, written in {time.perf_counter() - start:.0f} s", flush=True)
            rows.append((n_shards, size, measure(out, n_shards)))
    names = list(rows[0][2])
    print("\n| shards | MiB | " + " | ".join(f"{name} (s)" for name in names) + " |")
    print("|---:|---:|" + "---:|" * len(names))
    for n_shards, size, times in rows:
        print(f"| {n_shards:,} | {size / 2**20:.0f} | " + " | ".join(f"{times[name]:.2f}" for name in names) + " |")


if __name__ == "__main__":
    main()
