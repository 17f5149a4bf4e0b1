"""The CUDA code paths on a real GPU: half precision, the fused attention kernel, out-of-memory
back-off, one-pass tokens. Where torch cannot use CUDA they are skipped with the reason, so `-ra`
lists them; `bash tests/run.sh` on a GPU node runs them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from structure_tokens.embed.checkpoint import load_esm2, write_random_esm2_checkpoint
from structure_tokens.embed.embedder import Embedder, embed_shard
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.shards import write_shard
from structure_tokens.tokenize.from_embeddings import tokenize_shard
from structure_tokens.tokenize.one_pass import embed_and_tokenize_shard
from conftest import assert_same_tokens, proteins

NO_CUDA = f"torch {torch.__version__} cannot use CUDA here (no GPU, or a CPU-only build): run on a GPU node"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)


@pytest.fixture(scope="module")
def esm2_8m_shape(tmp_path_factory):
    """Random weights in the shape of ESM-2 8M (6 layers x 320, 20 heads)."""
    return write_random_esm2_checkpoint(tmp_path_factory.mktemp("cuda") / "esm2_t6_8M_random.pt", num_layers=6,
                                        embed_dim=320, attention_heads=20)


def embeddings(checkpoint, batch, **options):
    model, alphabet, *_ = load_esm2(checkpoint)
    embedder = Embedder(model, alphabet, EmbedOptions(**options))
    return embedder, dict(embedder.embed(batch))


@pytest.mark.parametrize("dtype, tolerance", [("float16", 0.01), ("bfloat16", 0.05)])
def test_half_precision_on_cuda_stays_close_to_float32_on_cpu(esm2_8m_shape, dtype, tolerance):
    batch = proteins([1500, 700, 300, 120, 40], seed=1)  # the first is windowed
    _, reference = embeddings(esm2_8m_shape, batch, device="cpu", dtype="float32")
    embedder, got = embeddings(esm2_8m_shape, batch, device="cuda", dtype=dtype)
    assert embedder.device.type == "cuda" and str(embedder.dtype) == f"torch.{dtype}"
    for index, expected in reference.items():
        error = np.linalg.norm(got[index].astype(np.float32) - expected) / np.linalg.norm(expected)
        assert error < tolerance, (index, error)


def test_fused_attention_runs_a_fused_cuda_kernel(esm2_8m_shape):
    embedder, _ = embeddings(esm2_8m_shape, proteins([50]), device="cuda")
    for batch in (proteins([300, 200, 100], seed=2), proteins([256], seed=3)):  # padded, unpadded
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                torch.profiler.ProfilerActivity.CUDA]) as profile:
            list(embedder.embed(batch))
            torch.cuda.synchronize()
        names = {event.key for event in profile.key_averages()}
        fused = {n for n in names if n.startswith("aten::_scaled_dot_product_")
                 and ("flash" in n or "efficient" in n or "cudnn" in n)}
        assert fused and "aten::_scaled_dot_product_attention_math" not in names, sorted(names)


def test_real_out_of_memory_halves_batches_with_close_values(esm2_8m_shape):
    batch = proteins([1000] * 64, seed=4)
    _, expected = embeddings(esm2_8m_shape, batch, device="cuda", token_budget=8192)
    model, alphabet, *_ = load_esm2(esm2_8m_shape)
    embedder = Embedder(model, alphabet, EmbedOptions(device="cuda", token_budget=64 * 1002))
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 300 * 2**20) / total)
    try:
        got = dict(embedder.embed(batch))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert embedder.oom_splits >= 1 and embedder.max_batch_tokens < 64 * 1002
    for index, values in expected.items():  # other batch neighbours: float16 rounding may differ
        np.testing.assert_allclose(got[index].astype(np.float32), values.astype(np.float32), rtol=0.02, atol=0.02)


def test_one_pass_tokens_on_cuda_equal_tokens_assigned_on_the_cpu(esm2_8m_shape, tmp_path):
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, proteins([1300, 500, 400, 250, 90, 60, 30], seed=5))
    options = EmbedOptions(device="cuda", token_budget=2048)
    embedding_h5 = tmp_path / "embeddings" / "shard_00000.h5"
    embed_shard(shard, esm2_8m_shape, embedding_h5, options)
    with EmbeddingShard(embedding_h5) as stored:  # centroids among the embeddings: many close calls
        rows = np.concatenate([block for _, block in stored.iter_blocks(65536)]).astype(np.float32)
        provenance = stored.provenance
    centroids = rows[np.random.default_rng(0).choice(len(rows), 64, replace=False)]
    codebook = tmp_path / "codebook_K64.npz"
    Codebook.trained(centroids, provenance, seed=0, n_train=len(rows)).save(codebook)
    on_cpu = tmp_path / "two_pass" / "shard_00000.h5"
    tokenize_shard(embedding_h5, codebook, on_cpu)
    on_gpu = tmp_path / "one_pass" / "shard_00000.h5"
    embed_and_tokenize_shard(shard, esm2_8m_shape, codebook, on_gpu, options)
    assert_same_tokens(on_gpu, on_cpu)
