"""Embedder and embed_shard: batching, equality with fair-esm's own forward, windows, OOM back-off, resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.embedder import (GPU_ALLOCATION_VARIABLES, Embedder, allocated_gpus, embed_shard,
                                              padded_tokens, window_starts)
from structure_tokens.embed.options import WINDOW, EmbedOptions
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.resumable import partial_dir
from structure_tokens.formats.shards import Protein, write_shard

from conftest import crash_embedder_on_batch, proteins


def stock_embedding(checkpoint, sequence, layer):
    """fair-esm's own forward on one protein: fresh model, stock attention, no batching or padding."""
    model, alphabet, *_ = load_esm2(checkpoint)
    _, _, tokens = alphabet.get_batch_converter()([("x", sequence)])
    with torch.no_grad():
        return model(tokens, repr_layers=[layer])["representations"][layer][0, 1:-1].numpy()


def embedder(checkpoint, **options):
    model, alphabet, *_ = load_esm2(checkpoint)
    return Embedder(model, alphabet, EmbedOptions(**options))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("layer", [-1, 1])
def test_batched_embeddings_equal_fair_esm_one_at_a_time(tiny_checkpoint, fast, layer):
    batch = proteins([30, 5, 120, 64, 64, 7])
    tiny = embedder(tiny_checkpoint, token_budget=200, fast_attention=fast, layer=layer)
    assert tiny.layer == (2 if layer == -1 else 1) and tiny.dtype == torch.float32
    assert tiny.fast_attention_modules == (2 if fast else 0)
    got = list(tiny.embed(batch))
    assert [i for i, _ in got] == [2, 3, 4, 0, 5, 1]  # longest first, ties by input order
    for i, embedding in got:
        expected = stock_embedding(tiny_checkpoint, batch[i].sequence, tiny.layer)
        assert embedding.dtype == np.float16 and embedding.shape == (batch[i].length, 32)
        np.testing.assert_allclose(embedding.astype(np.float32), expected, atol=2e-2, rtol=1e-2)


def test_batches_respect_the_token_budget(tiny_checkpoint):
    tiny = embedder(tiny_checkpoint, token_budget=1024)
    plan = tiny.batches(tiny.pieces(proteins([300, 10, 200, 90, 90, 500, 40, 1022])))
    assert [[len(p.sequence) for p in b] for b in plan] == [[1022], [500, 300], [200, 90, 90, 40, 10]]
    assert all(padded_tokens(batch) <= 1024 for batch in plan)


def test_options_are_checked(tiny_checkpoint):
    with pytest.raises(ValueError, match="long_policy must be one of"):
        embedder(tiny_checkpoint, long_policy="drop")
    with pytest.raises(ValueError, match="dtype must be 'auto' or one of"):
        embedder(tiny_checkpoint, dtype="half")
    with pytest.raises(ValueError, match="model.layer: 3 is outside the model's layers: 0..2"):
        embedder(tiny_checkpoint, layer=3)
    assert EmbedOptions.from_config({"layer": -2, "name": "esm2_t33_650M_UR50D"}) == EmbedOptions(layer=-2)


def test_long_proteins_are_windowed_truncated_or_skipped(tiny_checkpoint):
    assert window_starts(2500, 256) == [0, 766, 1478] and window_starts(WINDOW, 256) == [0]
    long = proteins([2500, 50])
    got = dict(embedder(tiny_checkpoint, window_overlap=256, token_budget=4096).embed(long))
    assert got[0].shape == (2500, 32) and np.isfinite(got[0]).all()
    first = stock_embedding(tiny_checkpoint, long[0].sequence[:WINDOW], 2)
    last = stock_embedding(tiny_checkpoint, long[0].sequence[1478:], 2)
    # residues covered by one window equal that window's embedding; shared ones are the mean
    np.testing.assert_allclose(got[0][:766].astype(np.float32), first[:766], atol=2e-2, rtol=1e-2)
    second = stock_embedding(tiny_checkpoint, long[0].sequence[766:766 + WINDOW], 2)
    np.testing.assert_allclose(got[0][766:1022].astype(np.float32), (first[766:] + second[:256]) / 2,
                               atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(got[0][1788:].astype(np.float32), last[310:], atol=2e-2, rtol=1e-2)

    truncated = dict(embedder(tiny_checkpoint, long_policy="truncate").embed(long))
    np.testing.assert_allclose(truncated[0].astype(np.float32), first, atol=2e-2, rtol=1e-2)
    skipping = embedder(tiny_checkpoint, long_policy="skip")
    assert [i for i, _ in skipping.embed(long)] == [1] and skipping.skipped == [0]


def test_cuda_out_of_memory_halves_the_batch_and_lowers_the_cap(tiny_checkpoint):
    batch = proteins([98] * 20)
    expected = dict(embedder(tiny_checkpoint, token_budget=1000).embed(batch))
    tiny = embedder(tiny_checkpoint, token_budget=1000)
    real_forward, sizes = tiny.model.forward, []

    def forward_with_little_memory(tokens, **kwargs):
        sizes.append(len(tokens))
        if tokens.numel() > 600:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(tokens, **kwargs)

    tiny.model.forward = forward_with_little_memory
    got = dict(tiny.embed(batch))
    assert sizes == [10, 5, 5, 5, 5]  # the second batch of 10 is split before it runs
    assert tiny.oom_splits == 1 and tiny.max_batch_tokens == 999
    assert all(np.array_equal(got[i], expected[i]) for i in range(len(batch)))


def test_next_batch_is_launched_before_results_are_handed_out(tiny_checkpoint, monkeypatch):
    model, alphabet, *_ = load_esm2(tiny_checkpoint)
    embedder = Embedder(model, alphabet, EmbedOptions(token_budget=700))
    batch = proteins([300, 200, 150, 100, 80, 60, 40, 20])
    events, real_run = [], Embedder._run

    def logged_run(self, pieces, *args):
        events.append(("launch", len(pieces)))
        return real_run(self, pieces, *args)

    monkeypatch.setattr(Embedder, "_run", logged_run)
    for finished in embedder.embed_batches(batch):
        events.append(("handed out", len(finished)))
    assert events == [("launch", 2), ("launch", 4), ("handed out", 2), ("launch", 2), ("handed out", 4),
                      ("handed out", 2)]


def assert_same_shard(path, reference):
    """Same proteins in the same order with the same float16 values (``created`` aside)."""
    with EmbeddingShard(path) as resumed, EmbeddingShard(reference) as clean:
        assert resumed.ids == clean.ids and resumed.sequence_hashes == clean.sequence_hashes
        np.testing.assert_array_equal(resumed.offsets, clean.offsets)
        np.testing.assert_array_equal(resumed.rows(np.arange(resumed.n_residues)),
                                      clean.rows(np.arange(clean.n_residues)))


def test_embed_shard_resumes_after_a_crash(tiny_checkpoint, tmp_path, monkeypatch):
    batch = proteins([300, 200, 150, 100, 80, 60, 40, 20])
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, batch)
    options = EmbedOptions(token_budget=700)
    reference = tmp_path / "reference" / "shard_00000.h5"
    embed_shard(shard, tiny_checkpoint, reference, options)

    out = tmp_path / "resumed" / "shard_00000.h5"
    undo = crash_embedder_on_batch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="node died"):
        embed_shard(shard, tiny_checkpoint, out, options)
    # each forward batch finished before the crash is stored as one batch, whatever the token budget
    assert not out.exists() and len(list(partial_dir(out).glob("batch_*.npz"))) == 2
    undo()
    stats = embed_shard(shard, tiny_checkpoint, out, options)
    # the two batches finished before the crash ([300, 200], [150, 100, 80, 60]) are kept
    assert stats["resumed"] == 6 and stats["embedded_now"] == 2 and stats["n_residues"] == 60
    assert not partial_dir(out).exists()
    assert_same_shard(out, reference)


def test_embed_shard_resumed_after_the_input_was_edited_equals_a_clean_run(tiny_checkpoint, tmp_path, monkeypatch,
                                                                           caplog):
    shard = tmp_path / "shard_00000.tsv"
    original = proteins([300, 200, 150, 100, 80, 60, 40, 20])
    write_shard(shard, original)
    out = tmp_path / "resumed" / "shard_00000.h5"
    options = EmbedOptions(token_budget=700)
    undo = crash_embedder_on_batch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="node died"):
        embed_shard(shard, tiny_checkpoint, out, options)
    undo()
    # p5 (finished before the crash, in the batch [150, 100, 80, 60]) gets a new sequence of the same length
    replacement = proteins([60], seed=7)[0]
    write_shard(shard, original[:5] + [Protein("p5", replacement.sequence, replacement.sequence_hash)] + original[6:])
    with caplog.at_level(logging.WARNING):
        stats = embed_shard(shard, tiny_checkpoint, out, options)
    # its whole forward batch is recomputed, since padding and kernels make values depend on the batch
    assert ("discarding 4 finished proteins whose sequence or forward batch changed, or that left the shard: "
            "p2, p3, p4, p5") in caplog.text
    assert stats["resumed"] == 2 and stats["embedded_now"] == 6
    reference = tmp_path / "reference" / "shard_00000.h5"
    embed_shard(shard, tiny_checkpoint, reference, options)
    assert_same_shard(out, reference)


def test_embed_shard_records_skipped_proteins_and_provenance(tiny_checkpoint, tmp_path):
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, proteins([1100, 30]))
    stats = embed_shard(shard, tiny_checkpoint, tmp_path / "out.h5", EmbedOptions(long_policy="skip"))
    assert stats["skipped_ids"] == ["p0"] and stats["embedded_now"] == 1 and stats["n_residues"] == 30
    with EmbeddingShard(tmp_path / "out.h5") as out:
        assert out.ids == ["p1"] and out.skipped_ids == ["p0"]
        keys = ("model_name", "layer", "long_policy", "window", "window_overlap", "compute_dtype", "dtype",
                "embed_dim", "format_version", "weights")
        assert {k: out.attrs[k] for k in keys} == {
            "model_name": tiny_checkpoint.stem, "layer": 2, "weights": "random-test", "long_policy": "skip",
            "window": WINDOW, "window_overlap": 256, "compute_dtype": "float32", "dtype": "float16", "embed_dim": 32,
            "format_version": 2}
        assert out.attrs["torch_version"] == torch.__version__ and out.attrs["created"]


@pytest.mark.parametrize("variables", [{"CUDA_VISIBLE_DEVICES": "0"}, {"SLURM_JOB_GPUS": "3"},
                                       {"SLURM_GPUS_ON_NODE": "1"}])
def test_a_job_given_a_gpu_never_falls_back_to_the_cpu(tiny_checkpoint, monkeypatch, variables):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # e.g. a CPU-only torch in the job's env
    for name in GPU_ALLOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    name, value = next(iter(variables.items()))
    with pytest.raises(RuntimeError, match=rf"model.device is 'auto' and this job was given GPUs \({name}={value}\)"
                                           r".*cannot use CUDA.*set model.device: cpu"):
        embedder(tiny_checkpoint)
    assert embedder(tiny_checkpoint, device="cpu").device.type == "cpu"  # on purpose: allowed


def test_without_a_gpu_auto_means_cpu_and_cuda_is_an_error(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in GPU_ALLOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # "no GPU" as some sites write it
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "0")
    assert allocated_gpus() == {}
    assert embedder(tiny_checkpoint).device.type == "cpu"
    with pytest.raises(RuntimeError, match="model.device is 'cuda' and no GPU is visible"):
        embedder(tiny_checkpoint, device="cuda")


def test_results_can_stay_on_the_device_with_the_same_values(tiny_checkpoint):
    """One-pass tokens keep embeddings on the model's device; windowed means are the same float32 mean."""
    batch = proteins([1500, 300, 40], seed=5)  # the first is embedded in overlapping windows
    host = embedder(tiny_checkpoint, token_budget=4096)
    expected = {index: values for finished in host.embed_batches(batch) for index, values in finished}
    got = {index: values for finished in host.embed_batches(batch, on_device=True) for index, values in finished}
    assert expected.keys() == got.keys() == {0, 1, 2}
    for index, values in got.items():
        assert isinstance(values, torch.Tensor) and values.dtype == torch.float16
        np.testing.assert_array_equal(values.numpy(), expected[index])
