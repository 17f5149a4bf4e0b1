"""The one model/layer/dim check (`formats.provenance.Provenance`) and how files carry it."""

from __future__ import annotations

import numpy as np
import pytest

from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard, write_embedding_shard
from structure_tokens.formats.provenance import Provenance, weights_note

SOURCE = Provenance("esm2_t6_8M_UR50D", 6, 4, "fair-esm")


def test_require_match_names_both_files_and_what_differs():
    SOURCE.require_match(Provenance("esm2_t6_8M_UR50D", 6, 4, "unknown"), "a.h5", "b.npz")  # origin not compared
    with pytest.raises(ValueError) as error:
        SOURCE.require_match(Provenance("esm2_t6_8M_UR50D", 5, 4), "a.h5", "codebook b.npz")
    assert str(error.value) == ("a.h5 (model esm2_t6_8M_UR50D, layer 6, dim 4) does not match codebook b.npz "
                                "(model esm2_t6_8M_UR50D, layer 5, dim 4)")
    with pytest.raises(ValueError, match="weights origin 'pretrained' is not one of"):
        Provenance("m", 1, 4, "pretrained")


def test_embedding_shards_and_codebooks_carry_it(tmp_path):
    shard = tmp_path / "shard_00000.h5"
    write_embedding_shard(shard, ["p"], ["h"], [np.zeros((3, 4), np.float32)], SOURCE.attrs())
    with EmbeddingShard(shard) as stored:
        assert stored.provenance == SOURCE and stored.provenance.weights == "fair-esm"
    codebook = Codebook.trained(np.ones((2, 4), np.float32), SOURCE, seed=0, n_train=3)
    codebook.save(tmp_path / "codebook_K2.npz")
    loaded = Codebook.load(tmp_path / "codebook_K2.npz")
    assert loaded.provenance == SOURCE and loaded.weights == "fair-esm"
    with pytest.raises(ValueError, match=r"centroids of shape \(2, 5\) do not fit embeddings of model"):
        Codebook.trained(np.ones((2, 5), np.float32), SOURCE, seed=0, n_train=3)


def test_files_without_the_weights_attribute_read_as_unknown_origin(tmp_path):
    shard = tmp_path / "shard_00000.h5"
    write_embedding_shard(shard, ["p"], ["h"], [np.zeros((3, 4), np.float32)], {"model_name": "m", "layer": 1})
    with EmbeddingShard(shard) as stored:
        assert stored.provenance == Provenance("m", 1, 4) and stored.provenance.weights == "unknown"
    arrays = dict(np.load(_saved_codebook(tmp_path), allow_pickle=False))
    del arrays["weights"]  # a codebook written before the field existed
    np.savez(tmp_path / "old.npz", **arrays)
    assert Codebook.load(tmp_path / "old.npz").weights == "unknown"
    with pytest.raises(ValueError, match=r"x.h5: no 'layer' attribute"):
        Provenance.from_attrs("x.h5", {"model_name": "m", "embed_dim": 4})


def test_reports_warn_unless_the_weights_are_a_release():
    assert weights_note("esm2_t33_650M_UR50D", "fair-esm") is None
    assert "random test checkpoint" in weights_note("esm2_t6_8M_UR50D", "random-test")
    assert "unknown origin" in weights_note("esm2_tiny_finetuned", "unknown")


def _saved_codebook(folder):
    path = folder / "codebook_K2.npz"
    Codebook.trained(np.ones((2, 4), np.float32), SOURCE, seed=0, n_train=3).save(path)
    return path
