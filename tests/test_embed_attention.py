"""Fused (SDPA) attention and half-precision casting against fair-esm's stock model on the same weights."""

from __future__ import annotations

import pytest
import torch

from structure_tokens.embed.attention import cast_model, enable_fast_attention
from structure_tokens.embed.checkpoint import load_esm2, write_random_esm2_checkpoint

AMINO = "ACDEFGHIKLMNPQRSTVWY"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint_and_tokens(tmp_path_factory):
    """A 3-layer 64-dim ESM-2 and a batch whose rows carry very different amounts of padding."""
    path = write_random_esm2_checkpoint(tmp_path_factory.mktemp("attention") / "esm2_t3_64.pt",
                                        num_layers=3, embed_dim=64, attention_heads=4, seed=1)
    _, alphabet, *_ = load_esm2(path)
    generator = torch.Generator().manual_seed(0)
    sequences = ["".join(AMINO[i] for i in torch.randint(0, 20, (n,), generator=generator)) for n in (400, 3, 64, 1)]
    _, _, tokens = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(sequences)])
    return path, tokens, tokens != alphabet.padding_idx


def model(path, dtype=torch.float32, fast=False, cast=True):
    """A fresh model (fair-esm caches rotary tables per instance), cast by ``cast_model`` or by ``.to``.

    Queries are scaled up 4x so attention is sharp and depends on positions, as in a trained model
    (random initialisation gives near-uniform attention that hides position errors).
    """
    esm2 = load_esm2(path)[0]
    for layer in esm2.layers:
        layer.self_attn.q_proj.weight.data *= 4
    esm2 = cast_model(esm2, CPU, dtype) if cast else esm2.to(dtype)
    if fast:
        assert enable_fast_attention(esm2) == esm2.num_layers and enable_fast_attention(esm2) == 0
    return esm2


def last_layer(esm2, tokens):
    with torch.inference_mode():
        return esm2(tokens, repr_layers=[esm2.num_layers])["representations"][esm2.num_layers].float()


def relative_error(got, expected, real):
    """Largest absolute error over real (not padding) positions, relative to the reference's scale."""
    return ((got[real] - expected[real]).abs().max() / expected[real].abs().max()).item()


def test_fast_attention_matches_stock_in_float32(checkpoint_and_tokens):
    path, tokens, real = checkpoint_and_tokens
    stock = last_layer(model(path, cast=False), tokens)
    fast = last_layer(model(path, fast=True), tokens)
    assert (fast[real] - stock[real]).abs().max().item() < 1e-5
    assert relative_error(fast, stock, real) < 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_stays_close_to_float32(checkpoint_and_tokens, dtype):
    path, tokens, real = checkpoint_and_tokens
    reference = last_layer(model(path, cast=False), tokens)
    naive = relative_error(last_layer(model(path, dtype, cast=False), tokens), reference, real)  # model.to(dtype)
    stock = relative_error(last_layer(model(path, dtype), tokens), reference, real)
    fast = relative_error(last_layer(model(path, dtype, fast=True), tokens), reference, real)
    limit = 0.03 if dtype == torch.bfloat16 else 0.004  # measured: 0.012 and 0.0015
    assert stock < limit and fast < limit and fast < 1.5 * stock, (naive, stock, fast)
    assert naive > 3 * stock  # measured 0.15 and 0.0085: fair-esm's half-precision rotary angles


def test_cast_model_keeps_rotary_angles_in_float32(checkpoint_and_tokens):
    path = checkpoint_and_tokens[0]
    q = torch.randn(4, 1000, 16)
    expected = load_esm2(path)[0].layers[0].self_attn.rot_emb(q, q)[0]
    for dtype, limit in ((torch.bfloat16, 0.05), (torch.float16, 0.005)):
        rotary = cast_model(load_esm2(path)[0], CPU, dtype).layers[0].self_attn.rot_emb
        got = rotary(q.to(dtype), q.to(dtype))[0]
        assert got.dtype == dtype and rotary.inv_freq.dtype == torch.float32
        assert (got.float() - expected).abs().max() / expected.abs().max() < limit


def test_attention_weight_requests_take_the_stock_path(checkpoint_and_tokens):
    path, tokens, _ = checkpoint_and_tokens
    with torch.inference_mode():
        stock = model(path)(tokens, return_contacts=True)
        fast = model(path, fast=True)(tokens, return_contacts=True)
    assert torch.equal(stock["attentions"], fast["attentions"])
    assert torch.allclose(stock["contacts"], fast["contacts"], atol=1e-6)
