"""Embedding shard files: layout, completeness checks, reading, resumable writing."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from structure_tokens.formats.embeddings import EmbeddingShard, EmbeddingWriter, is_complete, write_embedding_shard
from structure_tokens.formats.resumable import partial_dir

ATTRS = {"model_name": "esm2_test", "layer": 2}
SHARD = [("a", "ha", ""), ("b", "hb", ""), ("c", "hc", "")]


def embedding(length, value, dim=4):
    return np.full((length, dim), value, dtype=np.float32)


def test_layout_reading_and_completeness(tmp_path):
    path = tmp_path / "shard_00000.h5"
    with EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=3) as writer:
        writer.add("a", embedding(3, 1))
        writer.add("b", embedding(2, 0))
        writer.add("c", embedding(1, 2))
        assert not path.exists()  # only the batches exist until the block ends
    assert is_complete(path) and not partial_dir(path).exists()
    with h5py.File(path) as h5:
        assert h5["embeddings"].dtype == np.float16 and h5["embeddings"].shape == (6, 4)
        assert h5["offsets"][()].tolist() == [0, 3, 5, 6] and h5["ids"].asstr()[()].tolist() == ["a", "b", "c"]
        assert h5.attrs["model_name"] == b"esm2_test" and h5.attrs["format_version"] == 2
    with EmbeddingShard(path) as shard:
        assert shard.ids == ["a", "b", "c"] and shard.sequence_hashes == ["ha", "hb", "hc"]
        assert (shard.n_residues, shard.dim) == (6, 4)
        assert shard.protein(2).tolist() == [[2] * 4]
        assert shard.rows(np.array([5, 0, 5])).tolist() == [[2] * 4, [1] * 4, [2] * 4]
        blocks = list(shard.iter_blocks(4))
        assert [start for start, _ in blocks] == [0, 4]
        assert np.concatenate([b for _, b in blocks])[:, 0].tolist() == [1, 1, 1, 0, 0, 2]


def test_damaged_files_are_not_complete(tmp_path):
    path = tmp_path / "shard_00000.h5"
    write_embedding_shard(path, ["a", "b"], ["ha", "hb"], [embedding(3, 1), embedding(2, 0)], ATTRS)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:1000])
    assert is_complete(path) and not is_complete(truncated) and not is_complete(tmp_path / "absent.h5")
    with h5py.File(path, "a") as h5:
        h5["offsets"][2] = 4  # offsets no longer match the embedding rows
    assert not is_complete(path)
    with h5py.File(path, "a") as h5:
        h5["offsets"][2] = 5
        del h5["sequence_hash"]
    assert not is_complete(path)
    with pytest.raises(ValueError, match=r"shard_00000.h5 is incomplete or corrupt: not a complete embedding shard "
                                         r"\(no dataset sequence_hash\)"):
        EmbeddingShard(path)


def test_a_shard_with_no_proteins_is_complete(tmp_path):
    path = tmp_path / "empty.h5"
    with EmbeddingWriter(path, proteins=[], embed_dim=4, attrs=ATTRS):
        pass  # e.g. every protein skipped by long_policy: skip
    with EmbeddingShard(path) as shard:
        assert shard.ids == [] and shard.n_residues == 0 and list(shard.iter_blocks(8)) == []


def killed_writer(path, names, *, flush_rows, rows):
    """A writer of SHARD that added ``names`` (``rows`` rows of ones each) and then died, leaving its batches."""
    with pytest.raises(RuntimeError, match="killed"):
        with EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=flush_rows) as writer:
            for name in names:
                writer.add(name, embedding(rows, 1))
            raise RuntimeError("killed")


def test_writer_resumes_after_an_error(tmp_path):
    path = tmp_path / "shard_00000.h5"
    with pytest.raises(RuntimeError, match="killed"):
        with EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=100) as writer:
            writer.add("a", embedding(3, 1))
            writer.flush()  # a finished batch
            writer.add("b", embedding(2, 0))  # queued: kept by the error exit
            raise RuntimeError("killed")
    assert not path.exists()
    with EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS) as writer:
        assert writer.done_ids == {"a", "b"}
        writer.add("c", embedding(1, 2))
    with EmbeddingShard(path) as shard:
        assert shard.ids == ["a", "b", "c"] and shard.protein(0).tolist() == [[1] * 4] * 3


def test_partials_from_other_settings_or_damaged_are_discarded(tmp_path, caplog):
    path = tmp_path / "shard_00000.h5"
    killed_writer(path, "abc", flush_rows=1, rows=2)
    batches = sorted(partial_dir(path).glob("batch_*.npz"))
    assert len(batches) == 3
    batches[1].write_bytes(batches[1].read_bytes()[:100])  # damaged middle batch
    with caplog.at_level(logging.WARNING):
        writer = EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=1)
    assert writer.done_ids == {"a", "c"} and "discarding unreadable batch" in caplog.text
    writer.add("b", embedding(2, 3))  # goes after the last kept batch, never over it
    assert writer.done_ids == {"a", "b", "c"}
    with caplog.at_level(logging.WARNING):
        other_layer = EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs={**ATTRS, "layer": 1})
    assert other_layer.done_ids == set() and "made with other settings" in caplog.text


def test_output_is_in_shard_order_whatever_the_finishing_order(tmp_path):
    path = tmp_path / "shard_00000.h5"
    with EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=1) as writer:
        for name, value in (("c", 2), ("a", 1), ("b", 0)):  # e.g. longest first
            writer.add(name, embedding(value + 1, value))
    with EmbeddingShard(path) as shard:
        assert shard.ids == ["a", "b", "c"] and shard.sequence_hashes == ["ha", "hb", "hc"]
        assert [shard.protein(i).tolist() for i in range(3)] == [[[1] * 4] * 2, [[0] * 4], [[2] * 4] * 3]


def test_resume_discards_proteins_whose_sequence_changed_or_that_left_the_shard(tmp_path, caplog):
    path = tmp_path / "shard_00000.h5"
    killed_writer(path, "abc", flush_rows=2, rows=1)
    edited = [("a", "ha", ""), ("c", "hc-edited", ""), ("d", "hd", "")]  # b removed, c's sequence edited
    with caplog.at_level(logging.WARNING):
        writer = EmbeddingWriter(path, proteins=edited, embed_dim=4, attrs=ATTRS)
    assert writer.done_ids == {"a"}
    assert "discarding 2 finished proteins whose sequence or forward batch changed, or that left the shard: b, c" \
        in caplog.text
    with pytest.raises(ValueError, match="b is not in the shard"):
        writer.add("b", embedding(1, 5))
    writer.add("d", embedding(2, 4))
    writer.add("c", embedding(3, 3))
    writer.finalise()
    with EmbeddingShard(path) as shard:
        assert shard.ids == ["a", "c", "d"] and shard.sequence_hashes == ["ha", "hc-edited", "hd"]
        assert shard.protein(1).tolist() == [[3] * 4] * 3 and shard.protein(2).tolist() == [[4] * 4] * 2


def test_values_without_their_index_are_not_a_batch(tmp_path):
    path = tmp_path / "shard_00000.h5"
    killed_writer(path, "ab", flush_rows=1, rows=1)
    (partial_dir(path) / "batch_000001.npz").unlink()  # died between the values and the index
    writer = EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS)
    assert writer.done_ids == {"a"} and sorted(p.name for p in partial_dir(path).glob("batch_*")) == [
        "batch_000000.npy", "batch_000000.npz"]


def test_a_failed_background_write_is_raised_to_the_caller(tmp_path, monkeypatch):
    path = tmp_path / "shard_00000.h5"
    writer = EmbeddingWriter(path, proteins=SHARD, embed_dim=4, attrs=ATTRS, flush_rows=1)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    writer.add("a", embedding(1, 1))  # handed to the writer thread
    with pytest.raises(OSError, match="No space left on device"):
        writer.finalise()
    assert not path.exists()
