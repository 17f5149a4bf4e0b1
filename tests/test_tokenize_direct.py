"""One-pass mode: embed and tokenize a shard in one job, equal to the two passes, resumable within the shard."""

from __future__ import annotations

import numpy as np
import pytest

from structure_tokens.formats.codebook import Codebook
from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.embedder import Embedder, embed_shard
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.shards import write_shard
from structure_tokens.formats.resumable import partial_dir
from structure_tokens.tokenize.from_embeddings import tokenize_shard
from structure_tokens.tokenize.one_pass import embed_and_tokenize_shard
from conftest import assert_same_tokens, crash_embedder_on_batch, proteins

OPTIONS = EmbedOptions(token_budget=700)


@pytest.fixture
def one_pass_inputs(tiny_checkpoint, tmp_path):
    """A shard of 8 proteins (several batches), a random codebook of the tiny model, two-pass tokens."""
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, proteins([300, 200, 150, 100, 80, 60, 40, 20], seed=3))
    model, alphabet, model_name, _ = load_esm2(tiny_checkpoint)
    layer = Embedder(model, alphabet, OPTIONS).layer
    codebook_npz = tmp_path / "codebook_K16.npz"
    centroids = np.random.default_rng(0).normal(size=(16, model.embed_dim)).astype(np.float32)
    Codebook(centroids, model_name=model_name, layer=layer, seed=0, n_train=1).save(codebook_npz)
    embedding_h5 = tmp_path / "embeddings" / "shard_00000.h5"
    embed_shard(shard, tiny_checkpoint, embedding_h5, OPTIONS)
    two_pass = tmp_path / "two_pass" / "shard_00000.h5"
    tokenize_shard(embedding_h5, codebook_npz, two_pass)
    return shard, codebook_npz, two_pass


def test_one_pass_tokens_equal_embed_then_tokenize(tiny_checkpoint, one_pass_inputs, tmp_path):
    shard, codebook_npz, two_pass = one_pass_inputs
    out = tmp_path / "one_pass" / "shard_00000.h5"
    stats = embed_and_tokenize_shard(shard, tiny_checkpoint, codebook_npz, out, OPTIONS)
    assert (stats["n_proteins"], stats["tokenized_now"], stats["resumed"]) == (8, 8, 0)
    assert_same_tokens(out, two_pass)
    assert not partial_dir(out).exists()


def test_one_pass_resumes_after_a_crash_and_keeps_finished_batches(tiny_checkpoint, one_pass_inputs, tmp_path,
                                                                    monkeypatch):
    shard, codebook_npz, two_pass = one_pass_inputs
    out = tmp_path / "one_pass" / "shard_00000.h5"
    undo = crash_embedder_on_batch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="node died"):
        embed_and_tokenize_shard(shard, tiny_checkpoint, codebook_npz, out, OPTIONS)
    assert not out.exists() and len(list(partial_dir(out).glob("batch_*.npz"))) == 2  # one per forward batch
    undo()
    stats = embed_and_tokenize_shard(shard, tiny_checkpoint, codebook_npz, out, OPTIONS)
    # the two batches finished before the crash ([300, 200], [150, 100, 80, 60]) are not redone
    assert (stats["resumed"], stats["tokenized_now"], stats["n_residues"]) == (6, 2, 60)
    assert_same_tokens(out, two_pass)
    assert not partial_dir(out).exists()


def test_one_pass_discards_batches_made_with_another_codebook(tiny_checkpoint, one_pass_inputs, tmp_path,
                                                              monkeypatch):
    shard, codebook_npz, two_pass = one_pass_inputs
    first = Codebook.load(codebook_npz)
    other_npz = tmp_path / "other" / "codebook_K16.npz"
    Codebook(first.centroids[::-1].copy(), model_name=first.model_name, layer=first.layer, seed=1,
             n_train=1).save(other_npz)
    out = tmp_path / "one_pass" / "shard_00000.h5"
    undo = crash_embedder_on_batch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="node died"):
        embed_and_tokenize_shard(shard, tiny_checkpoint, other_npz, out, OPTIONS)
    undo()
    stats = embed_and_tokenize_shard(shard, tiny_checkpoint, codebook_npz, out, OPTIONS)
    assert (stats["resumed"], stats["tokenized_now"]) == (0, 8)
    assert_same_tokens(out, two_pass)
