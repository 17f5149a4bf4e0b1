"""Shard integrity: checksums on every byte of a shard file, readers that name what fails, and the
workflow's start-up check that verifies only files changed since they were last verified."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from structure_tokens.formats import integrity
from structure_tokens.formats.checksums import DamagedShard, is_recorded, record_path, record_verified, write_attrs
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard, EmbeddingWriter
from structure_tokens.formats.embeddings import is_complete as embeddings_complete
from structure_tokens.formats.embeddings import verify as verify_embeddings
from structure_tokens.formats.tokens import TokenShard, TokenWriter
from structure_tokens.formats.tokens import is_complete as tokens_complete
from structure_tokens.formats.tokens import verify as verify_tokens

from conftest import flip_bit_in_dataset

K = 16
IDS = [f"P{i:03d}" for i in range(10)]
LENGTHS = [7, 30, 12, 5, 41, 9, 16, 22, 3, 18]


def codebook() -> Codebook:
    return Codebook(np.zeros((K, 4), dtype=np.float32), model_name="esm2_test", layer=2, seed=0, n_train=1)


def write_embeddings(path: Path) -> Path:
    """A small embedding shard, with one protein left out by ``long_policy: skip``."""
    rng = np.random.default_rng(0)
    with EmbeddingWriter(path, proteins=[(i, f"hash-{i}", "") for i in IDS], embed_dim=4,
                         attrs={"model_name": "esm2_test", "layer": 2, "created": "2026-01-01T00:00:00"},
                         flush_rows=50) as writer:
        for protein_id, length in zip(IDS, LENGTHS):
            writer.add(protein_id, rng.standard_normal((length, 4)))
        writer.skipped_ids = ["P_long"]
    return path


def write_tokens(path: Path, tokens: list[np.ndarray] | None = None) -> Path:
    """A small tokens shard (random tokens unless given), with one protein left out."""
    rng = np.random.default_rng(1)
    tokens = tokens or [rng.integers(0, K, length).astype(np.uint16) for length in LENGTHS]
    with TokenWriter(path, [(i, f"hash-{i}", "") for i in IDS[:len(tokens)]], codebook(), {}, 50) as writer:
        for protein_id, values in zip(IDS, tokens):
            writer.add(protein_id, values)
        writer.skipped_ids = ["P_long"]
    return path


def embeddings_content(path: Path) -> tuple:
    """Everything an embedding shard holds, read by the project's reader, after a full verification."""
    verify_embeddings(path)
    with EmbeddingShard(path) as shard:
        return (shard.ids, shard.sequence_hashes, shard.skipped_ids, shard.offsets.tolist(), shard.attrs,
                [shard.protein(i).tolist() for i in range(len(shard.ids))])


def tokens_content(path: Path) -> tuple:
    """Everything a tokens shard holds, read by the project's reader (which verifies all of it)."""
    with TokenShard(path) as shard:
        return (shard.ids, shard.sequence_hashes, shard.skipped_ids, shard.offsets.tolist(), shard.attrs,
                shard.tokens.tolist())


KINDS = {"embeddings": (write_embeddings, embeddings_content), "tokens": (write_tokens, tokens_content)}


@pytest.mark.parametrize("kind", KINDS)
def test_every_flipped_bit_is_detected_or_changes_nothing(kind, tmp_path):
    """One bit flipped in each byte of a shard file, in turn: reading it either fails with a
    DamagedShard or gives exactly what was written (the byte was unused). Also covers the HDF5
    metadata: attributes, chunk indexes, the superblock."""
    write, content = KINDS[kind]
    original = write(tmp_path / "shard_00000.h5")
    expected = repr(content(original))
    raw = original.read_bytes()
    flipped = tmp_path / "flipped.h5"
    outcomes = {"detected": 0, "unchanged": 0}
    for i in range(len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 1 << (i % 8)
        flipped.write_bytes(damaged)
        try:
            outcome = "unchanged" if repr(content(flipped)) == expected else "undetected"
        except DamagedShard:
            outcome = "detected"
        assert outcome != "undetected", f"{kind}: bit {i % 8} of byte {i} flipped, content changed, nothing raised"
        outcomes[outcome] += 1
    assert outcomes["detected"] > 0.8 * len(raw)


def test_a_flipped_bit_in_embeddings_fails_the_read_naming_file_and_dataset(tmp_path):
    path = write_embeddings(tmp_path / "shard_00000.h5")
    flip_bit_in_dataset(path, "embeddings")
    assert not embeddings_complete(path)
    with EmbeddingShard(path) as shard:  # the layout is intact: the damage shows when the chunk is read
        with pytest.raises(ValueError, match=f"^{path} is incomplete or corrupt: dataset embeddings fails its "
                                             "checksum"):
            shard.protein(0)
        with pytest.raises(ValueError, match="dataset embeddings fails its checksum"):
            list(shard.iter_blocks(1000))


@pytest.mark.parametrize("dataset", ["tokens", "offsets", "ids", "sequence_hash", "skipped_ids"])
def test_a_flipped_bit_in_tokens_fails_the_reader_naming_file_and_dataset(dataset, tmp_path):
    path = write_tokens(tmp_path / "shard_00000.h5")
    flip_bit_in_dataset(path, dataset)
    assert not tokens_complete(path)
    with pytest.raises(ValueError, match=f"^{path} is incomplete or corrupt: dataset {dataset} fails its checksum"):
        TokenShard(path)


def test_a_token_outside_the_codebook_is_an_error_naming_the_shard(tmp_path):
    tokens = [np.array([1, 2, 3], dtype=np.uint16), np.array([4, K, 5], dtype=np.uint16)]
    path = write_tokens(tmp_path / "shard_00003.h5", tokens)
    with pytest.raises(ValueError, match=f"^{path} is incomplete or corrupt: token {K} of protein P001 "
                                         f"\\(residue 2\\) is out of range for a codebook of k={K}$"):
        TokenShard(path)
    assert not tokens_complete(path)


def test_shard_files_of_format_version_1_have_no_checksums_and_count_as_damaged(tmp_path):
    """Files as the code before checksums wrote them: contiguous datasets, no Fletcher-32."""
    path = tmp_path / "shard_00000.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("tokens", data=np.array([1, 2], dtype=np.uint16))
        h5.create_dataset("offsets", data=np.array([0, 2], dtype=np.int64))
        h5.create_dataset("ids", data=["a"], dtype=h5py.string_dtype("utf-8"))
        h5.create_dataset("sequence_hash", data=["h"], dtype=h5py.string_dtype("utf-8"))
        h5.attrs.update(format_version=1, codebook_sha256="x", k=K, model_name="esm2_test", layer=2)
    with pytest.raises(DamagedShard, match="format_version 1, expected 2"):
        verify_tokens(path)


def test_attributes_too_long_to_be_checksummed_are_refused(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5, pytest.raises(ValueError, match="attribute note has 4001 bytes"):
        write_attrs(h5, {"note": "n" * 4001})


def output_folder(tmp_path: Path) -> Path:
    """``embeddings/`` and ``tokens/`` of one shard, written (and so recorded) by their writers."""
    out = tmp_path / "results"
    write_embeddings(out / "embeddings" / "shard_00000.h5")
    write_tokens(out / "tokens" / "shard_00000.h5")
    return out


@pytest.fixture
def verified(monkeypatch) -> list[Path]:
    """The files the start-up check reads in full, in order."""
    calls: list[Path] = []

    def counting(verify):
        def wrapped(path):
            calls.append(Path(path))
            verify(path)
        return wrapped

    monkeypatch.setattr(integrity, "SHARD_FOLDERS",
                        {folder: counting(verify) for folder, verify in integrity.SHARD_FOLDERS.items()})
    return calls


def test_files_just_written_are_not_read_again_by_the_start_up_check(tmp_path, verified):
    out = output_folder(tmp_path)
    assert is_recorded(out / "tokens/shard_00000.h5") and is_recorded(out / "embeddings/shard_00000.h5")
    assert integrity.damaged_shard_files(out) == [] and verified == []


def test_a_copied_output_folder_is_verified_once(tmp_path, verified):
    out = tmp_path / "copy"
    shutil.copytree(output_folder(tmp_path), out)  # same bytes and mtimes, new inodes: the records do not match
    assert integrity.damaged_shard_files(out) == []
    assert verified == [out / "embeddings/shard_00000.h5", out / "tokens/shard_00000.h5"]
    assert integrity.damaged_shard_files(out) == [] and len(verified) == 2  # recorded by the first check


@pytest.mark.parametrize("folder, dataset", [("tokens", "tokens"), ("embeddings", "embeddings"),
                                             ("embeddings", "ids")])
def test_a_bit_flipped_after_the_file_was_written_is_found_also_with_its_mtime_kept(folder, dataset, tmp_path):
    out = output_folder(tmp_path)
    path = out / folder / "shard_00000.h5"
    time.sleep(0.05)  # ctime ticks in steps of a few ms: the flip must come in a later tick than the write
    mtime = path.stat().st_mtime_ns
    flip_bit_in_dataset(path, dataset)
    assert path.stat().st_mtime_ns == mtime and not is_recorded(path)
    for _ in range(2):  # never recorded as verified: found again until it is rebuilt
        [damaged] = integrity.damaged_shard_files(out)
        assert damaged.path == path and f"dataset {dataset} fails its checksum" in str(damaged)


def test_a_file_replaced_while_it_is_verified_is_not_recorded(tmp_path, monkeypatch):
    out = output_folder(tmp_path)
    path = out / "tokens/shard_00000.h5"
    record_path(path).unlink()
    real_verify = integrity.SHARD_FOLDERS["tokens"]

    def verify_while_a_job_writes(checked):
        real_verify(checked)
        time.sleep(0.05)
        write_tokens(path)  # a job of a concurrent run replaces the file (and records its own state)
        record_path(path).unlink()

    monkeypatch.setitem(integrity.SHARD_FOLDERS, "tokens", verify_while_a_job_writes)
    assert integrity.damaged_shard_files(out) == []
    assert not record_path(path).exists()


def test_the_check_works_in_an_output_folder_it_cannot_write(tmp_path, verified):
    out = tmp_path / "copy"
    shutil.copytree(output_folder(tmp_path), out)
    for folder in ("embeddings", "tokens"):
        os.chmod(out / folder / ".verified", 0o555)
    try:
        assert integrity.damaged_shard_files(out) == [] and len(verified) == 2
    finally:
        for folder in ("embeddings", "tokens"):
            os.chmod(out / folder / ".verified", 0o755)


def test_damage_a_reader_finds_in_a_recorded_file_is_found_again_by_the_next_check(tmp_path, verified):
    """Bit rot that changes no file metadata leaves the record matching (emulated here by recording
    the damaged file): the start-up check trusts it, the job's reader fails naming it and removes the
    record, so the next check verifies the file and has it rebuilt."""
    out = output_folder(tmp_path)
    path = out / "tokens/shard_00000.h5"
    flip_bit_in_dataset(path, "tokens")
    record_verified(path)
    assert integrity.damaged_shard_files(out) == [] and verified == []
    with pytest.raises(ValueError, match=f"^{path} is incomplete or corrupt: dataset tokens fails its checksum"):
        TokenShard(path)
    [damaged] = integrity.damaged_shard_files(out)
    assert damaged.path == path and verified == [path]


def test_a_file_deleted_while_the_check_runs_is_not_reported(tmp_path, monkeypatch):
    """A `temp()` embedding shard removed by a running workflow while a `-n` checks the folder."""
    out = tmp_path / "copy"
    shutil.copytree(output_folder(tmp_path), out)
    real_verify = integrity.SHARD_FOLDERS["embeddings"]

    def deleted_first(path):
        path.unlink()
        real_verify(path)

    monkeypatch.setitem(integrity.SHARD_FOLDERS, "embeddings", deleted_first)
    assert integrity.damaged_shard_files(out) == []
