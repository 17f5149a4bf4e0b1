"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO / "tests" / "data" / "real"  # real UniProt sequences and PDB structures (see its NOTICE.md)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim randomly initialised ESM-2 in the released fair-esm file format."""
    return write_random_esm2_checkpoint(tmp_path_factory.mktemp("model") / "esm2_t2_32_tiny_random.pt")


def crash_embedder_on_batch(monkeypatch, number: int):
    """Make the ``number``-th forward batch of any Embedder raise "node died"; returns a function that undoes it."""
    from structure_tokens.embed.embedder import Embedder

    real_run, calls = Embedder._run, []

    def run(self, pieces, *args):
        calls.append(len(pieces))
        if len(calls) == number:
            raise RuntimeError("node died")
        return real_run(self, pieces, *args)

    monkeypatch.setattr(Embedder, "_run", run)
    return lambda: monkeypatch.setattr(Embedder, "_run", real_run)


def flip_bit_in_dataset(path: Path, dataset: str, byte: int = 1, bit: int = 0) -> None:
    """Flip one bit of the stored data of ``dataset`` (its first chunk) in an HDF5 file, then set the
    file's access and modification times back: bit rot, or an edit that hides itself."""
    with h5py.File(path, "r") as h5:
        stored = h5[dataset].id
        offset = stored.get_offset() if h5[dataset].chunks is None else stored.get_chunk_info(0).byte_offset
    times = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset + byte)
        value = handle.read(1)[0]
        handle.seek(offset + byte)
        handle.write(bytes([value ^ (1 << bit)]))
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))


def run_snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None,
                  snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    """Run this checkout's workflow (or ``snakefile``) in ``workdir``; fail the test with its output on error."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-10000:]}")
    return result


def write_test_config(workdir: Path, checkpoint: Path, **overrides) -> Path:
    """``tests/data/workflow_config.yaml`` with the tiny checkpoint and top-level ``overrides``."""
    config = yaml.safe_load((REPO / "tests/data/workflow_config.yaml").read_text())
    config["model"]["checkpoint"] = str(checkpoint)
    config.update(overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
