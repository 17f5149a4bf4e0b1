"""Embedding stage: safe checkpoint loading, batching, fused attention, windows, HDF5 store, resume."""

from __future__ import annotations

import datetime

import h5py
import numpy as np
import pytest
import torch

from structure_tokens.embed.attention import enable_fast_attention
from structure_tokens.embed.checkpoint import download_weights, load_esm2, safe_load, write_random_esm2_checkpoint
from structure_tokens.embed.embedder import WINDOW, EmbedOptions, Embedder, embed_shard, window_starts
from structure_tokens.embed.store import EmbeddingShard, EmbeddingWriter, is_complete, partial_dir
from structure_tokens.inputs.shards import Protein, write_shard
from structure_tokens.inputs.validate import sequence_hash

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def proteins(lengths, seed=0):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list(AMINO), n)) for n in lengths]
    return [Protein(f"p{i}", s, sequence_hash(s)) for i, s in enumerate(seqs)]


def stock_embedding(model, alphabet, sequence, layer):
    """fair-esm's own forward, one protein, stock attention."""
    _, _, tokens = alphabet.get_batch_converter()([("x", sequence)])
    with torch.no_grad():
        return model(tokens, repr_layers=[layer])["representations"][layer][0, 1:-1].numpy()


def test_checkpoint_has_the_released_layout(tiny_checkpoint):
    data = safe_load(tiny_checkpoint)
    assert set(data) == {"model", "cfg"} and data["cfg"]["model"].encoder_layers == 2
    assert all(k.startswith(("encoder.sentence_encoder.", "encoder.lm_head.")) for k in data["model"])
    regression = safe_load(tiny_checkpoint.with_name(tiny_checkpoint.stem + "-contact-regression.pt"))
    assert set(regression["model"]) == {"contact_head.regression.weight", "contact_head.regression.bias"}
    model, alphabet, name = load_esm2(tiny_checkpoint)
    assert name == tiny_checkpoint.stem and model.num_layers == 2 and model.embed_dim == 32


def test_a_checkpoint_needing_other_globals_is_refused(tmp_path):
    path = tmp_path / "esm2_evil.pt"
    torch.save({"model": {}, "cfg": {"model": datetime.date(2026, 1, 1)}}, path)  # a global outside the allow-list
    with pytest.raises(ValueError, match="refused to load"):
        load_esm2(path)


def test_offline_download_says_how_to_supply_weights(tmp_path, monkeypatch):
    def offline(url, dst, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match=r"copying esm2_t6_8M_UR50D.pt and .*into .*checkpoints/, or set model.checkpoint"):
        download_weights("esm2_t6_8M_UR50D", tmp_path)
    assert not list((tmp_path / "checkpoints").iterdir())  # no half-written file left
    with pytest.raises(ValueError, match="unknown ESM-2 model"):
        download_weights("esm3", tmp_path)


def test_fast_attention_matches_stock(tmp_path):
    path = write_random_esm2_checkpoint(tmp_path / "esm2_t2_64.pt", num_layers=2, embed_dim=64, attention_heads=4)
    model, alphabet, _ = load_esm2(path)
    _, _, tokens = alphabet.get_batch_converter()([("a", "MKTAYIAKQRQISFVKSHFSRQ"), ("b", "MKVL")])
    with torch.no_grad():
        stock = model(tokens, repr_layers=[2])["representations"][2]
        assert enable_fast_attention(model) == 2
        fast = model(tokens, repr_layers=[2])["representations"][2]
    real = tokens != alphabet.padding_idx
    assert torch.allclose(stock[real], fast[real], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast", [True, False])
def test_batched_embeddings_equal_fair_esm_one_at_a_time(tiny_checkpoint, fast):
    model, alphabet, _ = load_esm2(tiny_checkpoint)
    batch = proteins([30, 5, 120, 64, 64, 7])
    embedder = Embedder(model, alphabet, EmbedOptions(token_budget=200, fast_attention=fast))
    assert embedder.layer == 2 and embedder.dtype == torch.float32
    got = dict(embedder.embed(batch))
    assert sorted(got) == list(range(len(batch)))
    reference, _, _ = load_esm2(tiny_checkpoint)
    for i, protein in enumerate(batch):
        expected = stock_embedding(reference, alphabet, protein.sequence, 2)
        assert got[i].dtype == np.float16 and got[i].shape == (protein.length, 32)
        np.testing.assert_allclose(got[i].astype(np.float32), expected, atol=2e-2, rtol=1e-2)


def test_batches_respect_the_token_budget(tiny_checkpoint):
    model, alphabet, _ = load_esm2(tiny_checkpoint)
    embedder = Embedder(model, alphabet, EmbedOptions(token_budget=1024))
    plan = embedder.batches(embedder.pieces(proteins([300, 10, 200, 90, 90, 500, 40, 1022])))
    assert [[len(p.sequence) for p in b] for b in plan] == [[1022], [500, 300], [200, 90, 90, 40, 10]]
    for batch in plan:
        assert len(batch) * (max(len(p.sequence) for p in batch) + 2) <= 1024 or len(batch) == 1


def test_long_proteins_are_windowed_and_averaged(tiny_checkpoint):
    assert window_starts(2500, 256) == [0, 766, 1478]
    model, alphabet, _ = load_esm2(tiny_checkpoint)
    long = proteins([2500, 50])
    embedder = Embedder(model, alphabet, EmbedOptions(window_overlap=256, token_budget=4096))
    got = dict(embedder.embed(long))
    assert got[0].shape == (2500, 32) and np.isfinite(got[0]).all()
    # residues covered by one window only equal that window's own embedding
    first = stock_embedding(load_esm2(tiny_checkpoint)[0], alphabet, long[0].sequence[:WINDOW], 2)
    np.testing.assert_allclose(got[0][:700].astype(np.float32), first[:700], atol=2e-2, rtol=1e-2)
    skipping = Embedder(model, alphabet, EmbedOptions(long_policy="skip"))
    assert [i for i, _ in skipping.embed(long)] == [1] and skipping.skipped == [0]


def test_embedding_store_layout_and_completeness(tmp_path):
    path = tmp_path / "shard_00000.h5"
    with EmbeddingWriter(path, embed_dim=4, attrs={"model_name": "m", "layer": 1}, flush_rows=3) as writer:
        writer.add("a", "ha", np.ones((3, 4)))
        writer.add("b", "hb", np.zeros((2, 4)))
        assert not path.exists()  # only the batches exist until the block ends
    assert is_complete(path) and not partial_dir(path).exists()
    with h5py.File(path) as h5:
        assert h5["embeddings"].dtype == np.float16 and h5["embeddings"].shape == (5, 4)
        assert h5["offsets"][()].tolist() == [0, 3, 5] and h5.attrs["model_name"] == "m"
    with EmbeddingShard(path) as shard:
        assert shard.ids == ["a", "b"] and shard.rows(np.array([4, 0])).tolist() == [[0] * 4, [1] * 4]
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:1000])
    assert not is_complete(truncated)
    with h5py.File(path, "a") as h5:
        del h5["sequence_hash"]
    assert not is_complete(path)
    with pytest.raises(ValueError, match="not a complete embedding shard"):
        EmbeddingShard(path)


def test_embed_shard_resumes_after_a_crash(tiny_checkpoint, tmp_path, monkeypatch):
    batch = proteins([300, 200, 150, 100, 80, 60, 40, 20])
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, batch)
    options = EmbedOptions(token_budget=700)
    reference = tmp_path / "reference" / "shard_00000.h5"
    embed_shard(shard, tiny_checkpoint, reference, options)

    out = tmp_path / "resumed" / "shard_00000.h5"
    real_forward = Embedder._forward
    calls = []

    def crash_on_third_batch(self, pieces):
        calls.append(len(pieces))
        if len(calls) == 3:
            raise RuntimeError("node died")
        return real_forward(self, pieces)

    monkeypatch.setattr(Embedder, "_forward", crash_on_third_batch)
    with pytest.raises(RuntimeError, match="node died"):
        embed_shard(shard, tiny_checkpoint, out, options)
    assert not out.exists() and list(partial_dir(out).glob("batch_*.npz"))
    monkeypatch.setattr(Embedder, "_forward", real_forward)
    stats = embed_shard(shard, tiny_checkpoint, out, options)
    assert stats["resumed"] > 0 and stats["embedded_now"] < len(batch)
    with EmbeddingShard(out) as resumed, EmbeddingShard(reference) as full:
        assert sorted(resumed.ids) == sorted(full.ids)
        for i, protein_id in enumerate(full.ids):
            np.testing.assert_array_equal(resumed.protein(resumed.ids.index(protein_id)), full.protein(i))


def test_embed_shard_records_skipped_proteins(tiny_checkpoint, tmp_path):
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, proteins([1100, 30]))
    stats = embed_shard(shard, tiny_checkpoint, tmp_path / "out.h5", EmbedOptions(long_policy="skip"))
    assert stats["skipped_ids"] == ["p0"]
    with EmbeddingShard(tmp_path / "out.h5") as out:
        assert out.ids == ["p1"] and out.attrs["skipped_ids"] == "p0" and out.attrs["long_policy"] == "skip"
        assert out.attrs["torch_version"] == torch.__version__ and out.attrs["layer"] == 2
