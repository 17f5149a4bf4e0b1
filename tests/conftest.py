"""Fixtures and helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard, write_embedding_shard
from structure_tokens.formats.shards import Protein, write_shard
from structure_tokens.formats.tokens import TokenShard
from structure_tokens.inputs.validate import sequence_hash
from structure_tokens.llm.options import OutputOptions
from structure_tokens.llm.outputs import write_shard_outputs
from structure_tokens.tokenize.from_embeddings import tokenize_shard

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO / "tests" / "data" / "real"  # real UniProt sequences and PDB structures (see its NOTICE.md)
AMINO = "ACDEFGHIKLMNPQRSTVWY"
DIM = 16  # of the blob embeddings
N_BLOBS = 8
MODEL_ATTRS = {"model_name": "esm2_tiny_random", "layer": 2}


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


def rule_blocks() -> dict[str, str]:
    """The text of every rule in rules/*.smk, by name."""
    blocks = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint) \w+:)", smk.read_text()):
            name = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            if name:
                blocks[name.group(1)] = block
    return blocks


def proteins(lengths, seed=0):
    """Random proteins ``p0, p1, ...`` of the given lengths."""
    rng = np.random.default_rng(seed)
    sequences = ["".join(rng.choice(list(AMINO), n)) for n in lengths]
    return [Protein(f"p{i}", s, sequence_hash(s)) for i, s in enumerate(sequences)]


def assert_same_tokens(path_a, path_b):
    """Two token files hold the same proteins, codebook and tokens."""
    with TokenShard(path_a) as a, TokenShard(path_b) as b:
        assert a.ids == b.ids and a.sequence_hashes == b.sequence_hashes
        assert a.codebook_sha256 == b.codebook_sha256
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.tokens, b.tokens)


def blob_centers(seed: int = 0) -> np.ndarray:
    """Well separated cluster centres in DIM dimensions."""
    return np.random.default_rng(seed).normal(scale=10.0, size=(N_BLOBS, DIM)).astype(np.float32)


def write_blob_shards(directory, n_shards: int = 2, proteins_per_shard: int = 20, *, seed: int = 1,
                      attrs: dict | None = None):
    """Embedding shards whose residues come from gaussian blobs around :func:`blob_centers`.

    Returns ``(paths, proteins)``; ``proteins`` maps id -> (sequence, sequence_hash, blob labels).
    """
    rng = np.random.default_rng(seed)
    centers = blob_centers()
    paths, proteins = [], {}
    for shard in range(n_shards):
        ids, hashes, embeddings = [], [], []
        for j in range(proteins_per_shard):
            length = int(rng.integers(5, 60))
            sequence = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=length))
            labels = rng.integers(0, N_BLOBS, size=length)
            protein_id = f"P{shard}_{j:03d}"
            sequence_hash = hashlib.sha256(sequence.encode()).hexdigest()
            ids.append(protein_id)
            hashes.append(sequence_hash)
            embeddings.append(centers[labels] + rng.normal(scale=0.3, size=(length, DIM)).astype(np.float32))
            proteins[protein_id] = (sequence, sequence_hash, labels)
        path = directory / f"shard_{shard:05d}.h5"
        write_embedding_shard(path, ids, hashes, embeddings, attrs or MODEL_ATTRS)
        paths.append(path)
    return paths, proteins


def prepared_protein(protein_id: str, sequence: str, sequence_hash: str) -> Protein:
    """A protein as the prepare stage writes it, with an alias, a description and a function text."""
    return Protein(protein_id, sequence, sequence_hash, aliases=(f"{protein_id}_alias",),
                   description="a protein", function=f"function of\t{protein_id}")


@pytest.fixture
def tokenized(tmp_path):
    """Two blob shards, their true-centre codebook, tokens and prepared TSVs (input order reversed)."""
    embeddings, proteins = write_blob_shards(tmp_path / "embeddings", n_shards=2, proteins_per_shard=6)
    codebook_npz = tmp_path / "codebook_K8.npz"
    Codebook(blob_centers(), model_name=MODEL_ATTRS["model_name"], layer=MODEL_ATTRS["layer"], seed=0,
             n_train=1).save(codebook_npz)
    tokens, tsvs = [], []
    for path in embeddings:
        out = tmp_path / "tokens" / path.name
        tokenize_shard(path, codebook_npz, out, block_rows=7)
        tokens.append(out)
        with EmbeddingShard(path) as shard:
            input_order = list(reversed(shard.ids))
        tsv = tmp_path / "shards" / f"{path.stem}.tsv"
        write_shard(tsv, [prepared_protein(i, *proteins[i][:2]) for i in input_order])
        tsvs.append(tsv)
    return {"embeddings": embeddings, "tokens": tokens, "tsvs": tsvs, "codebook": codebook_npz,
            "proteins": proteins}


def write_all_shard_outputs(tokenized, folder, **options):
    """Every shard's LLM outputs as the workflow lays them out; returns the per-shard stats."""
    return [write_shard_outputs(tsv, h5, tokenized["codebook"], OutputOptions(**options),
                                out_parquet=folder / f"tokens.parquet/{tsv.stem}.parquet",
                                out_jsonl=folder / f"interleaved.jsonl/{tsv.stem}.jsonl",
                                out_counts=folder / f"token_counts/{tsv.stem}.json")
            for tsv, h5 in zip(tokenized["tsvs"], tokenized["tokens"])]
