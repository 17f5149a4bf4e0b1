"""Codebook: residue sampling, k-means training, assignment, npz storage and usage metrics."""

from __future__ import annotations

import hashlib
import logging
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from structure_tokens.codebook.assign import assign, assign_torch, mean_squared_error
from structure_tokens.codebook.kmeans import train_codebook
from structure_tokens.codebook.options import BACKENDS
from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.codebook.train import train_codebook_from_shards
from structure_tokens.formats.codebook import Codebook
from structure_tokens.codebook.metrics import (
    dead_codes,
    describe_histogram,
    normalized_entropy,
    perplexity,
    tiny_codes,
    unique_tokens_per_protein,
    usage_counts,
    utilization,
)
from structure_tokens.codebook.sample import is_heldout, sample_residues
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.provenance import Provenance

from conftest import DIM, N_BLOBS, REPO, blob_centers, write_blob_shards

SOURCE = Provenance("m", 1, DIM)  # of the embeddings the k-means tests train on


def test_is_heldout_depends_only_on_the_hash():
    assert is_heldout("00000000ffff", 0.1) and not is_heldout("ffffffff0000", 0.1)
    assert not is_heldout("00000000", 0.0)


def test_sample_is_bounded_seeded_and_split_by_hash(tmp_path):
    paths, proteins = write_blob_shards(tmp_path, n_shards=3)
    train, heldout, info = sample_residues(paths, per_shard=100, max_total=240, holdout_fraction=0.25, seed=3)
    assert train.dtype == np.float32 and train.shape == (240, DIM)  # quota min(100, ceil(240 / 3))
    assert info["per_shard_quota"] == 80 and info["n_train"] == 240
    assert len(heldout) <= 3 * math.ceil(80 * 0.25)
    expected_heldout = sum(is_heldout(h, 0.25) for _, h, _ in proteins.values())
    assert 0 < info["n_heldout_proteins"] == expected_heldout
    assert info["n_train_proteins"] == len(proteins) - expected_heldout
    assert info["provenance"] == Provenance("esm2_tiny_random", 2, DIM)

    again, _, _ = sample_residues(paths, per_shard=100, max_total=240, holdout_fraction=0.25, seed=3)
    other, _, _ = sample_residues(paths, per_shard=100, max_total=240, holdout_fraction=0.25, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_unlimited_sample_is_exactly_the_per_protein_split(tmp_path):
    paths, _ = write_blob_shards(tmp_path, n_shards=1, proteins_per_shard=30)
    train, heldout, _ = sample_residues(paths, per_shard=10**6, max_total=10**6, holdout_fraction=0.3, seed=0)
    with EmbeddingShard(paths[0]) as shard:
        split = [is_heldout(h, 0.3) for h in shard.sequence_hashes]
        expected_train = np.concatenate([shard.protein(i) for i, held in enumerate(split) if not held])
        expected_heldout = np.concatenate([shard.protein(i) for i, held in enumerate(split) if held])
    np.testing.assert_array_equal(train, expected_train.astype(np.float32))
    np.testing.assert_array_equal(heldout, expected_heldout.astype(np.float32))


def test_shards_of_different_models_are_rejected(tmp_path):
    first, _ = write_blob_shards(tmp_path / "a", n_shards=1)
    second, _ = write_blob_shards(tmp_path / "b", n_shards=1, attrs={"model_name": "other", "layer": 2})
    with pytest.raises(ValueError, match=r"model esm2_tiny_random, layer 2, dim 16\) does not match .*model other"):
        sample_residues(first + second, per_shard=10, max_total=100, holdout_fraction=0.1, seed=0)


def blobs(n_per_blob: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_BLOBS), n_per_blob)
    X = blob_centers()[labels] + rng.normal(scale=0.3, size=(len(labels), DIM)).astype(np.float32)
    return X.astype(np.float32), labels


def purity(tokens: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of points whose token's majority blob is their own blob."""
    majority = {t: np.bincount(labels[tokens == t]).argmax() for t in np.unique(tokens)}
    return float(np.mean([majority[t] == label for t, label in zip(tokens, labels)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_recovers_blobs_and_assign_agrees(backend):
    X, labels = blobs()
    codebook, stats = train_codebook(X, CodebookOptions(k=N_BLOBS, batch_size=256, max_iter=50, backend=backend),
                                     SOURCE)
    tokens = assign(X, codebook.centroids, chunk_rows=300)
    assert tokens.dtype == np.uint16
    assert purity(tokens, labels) == 1.0
    assert utilization(usage_counts(tokens, N_BLOBS)) == 1.0
    assert mean_squared_error(X, codebook.centroids, tokens) == pytest.approx(DIM * 0.3**2, rel=0.2)
    assert stats["inertia"] > 0 and stats["iterations"] >= 1
    brute = ((X[:, None, :] - codebook.centroids[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(tokens, brute)
    assert stats["backend"] == backend
    assert stats["inertia"] == pytest.approx(((X - codebook.centroids[tokens]) ** 2).sum(), rel=1e-4)
    found = sorted(map(tuple, np.round(codebook.centroids[np.argsort(codebook.centroids[:, 0])], 1)))
    true = sorted(map(tuple, np.round(blob_centers()[np.argsort(blob_centers()[:, 0])], 1)))
    assert np.abs(np.array(found) - np.array(true)).max() < 0.2  # the known centres, recovered


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_lloyd_backends_are_seeded_and_leave_no_code_empty(backend):
    X, _ = blobs(100)
    fit = {"k": 12, "batch_size": 64, "max_iter": 20, "backend": backend}
    first, _ = train_codebook(X, CodebookOptions(seed=3, **fit), SOURCE)
    again, _ = train_codebook(X, CodebookOptions(seed=3, **fit), SOURCE)
    other, _ = train_codebook(X, CodebookOptions(seed=4, **fit), SOURCE)
    assert first.sha256 == again.sha256 and first.sha256 != other.sha256
    assert utilization(usage_counts(assign(X, first.centroids), 12)) == 1.0  # 12 codes for 8 blobs: none empty


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="codebook.backend must be one of"):
        CodebookOptions(k=4, backend="kmeans")


def test_near_ties_get_the_exact_nearest_centroid_whatever_the_chunking():
    """Centroid 1 is centroid 0 moved by one float32 ulp in a few coordinates: float32 scores cannot
    order the two, float64 can. Every row gets the exact answer, however the matmul is split."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((6, DIM)).astype(np.float32)
    centroids[1] = centroids[0]
    centroids[1, :4] = np.nextafter(centroids[0, :4], np.float32(np.inf))
    X = (centroids[0] + 0.5 * rng.standard_normal((400, DIM))).astype(np.float16)
    exact = ((X.astype(np.float64)[:, None, :] - centroids.astype(np.float64)[None]) ** 2).sum(-1).argmin(1)
    assert set(exact[:400]) == {0, 1}  # the rows really are split between the two near-identical centroids
    for chunk_rows in (400, 64, 7):
        np.testing.assert_array_equal(assign(X, centroids, chunk_rows=chunk_rows), exact)
        tokens = assign_torch(torch.from_numpy(X).float(), torch.from_numpy(centroids), chunk_rows=chunk_rows)
        np.testing.assert_array_equal(tokens.numpy(), exact)


def test_assign_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    X, _ = blobs(50)
    centroids = blob_centers(5)
    got = assign_torch(torch.from_numpy(X).to(torch.float16), torch.from_numpy(centroids), chunk_rows=64)
    np.testing.assert_array_equal(got.numpy(), assign(X.astype(np.float16), centroids))
    assert len(assign_torch(torch.zeros((0, DIM)), torch.from_numpy(centroids))) == 0


def test_training_needs_at_least_k_vectors():
    with pytest.raises(ValueError, match="only 5 sampled residues to train k=8"):
        train_codebook(np.zeros((5, DIM), np.float32), CodebookOptions(k=8, batch_size=8, max_iter=1),
                       SOURCE)


def test_codebook_npz_round_trip_has_no_objects_and_checks_sha(tmp_path):
    codebook = Codebook(blob_centers(), model_name="esm2_t6_8M_UR50D", layer=6, seed=3, n_train=100)
    path = tmp_path / "codebook_K8.npz"
    codebook.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        assert str(npz["sha256"]) == hashlib.sha256(codebook.centroids.tobytes()).hexdigest()
    loaded = Codebook.load(path)
    np.testing.assert_array_equal(loaded.centroids, codebook.centroids)
    loaded_fields = (loaded.model_name, loaded.layer, loaded.seed, loaded.n_train, loaded.k)
    assert loaded_fields == ("esm2_t6_8M_UR50D", 6, 3, 100, 8)

    with np.load(path, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["centroids"] = arrays["centroids"] + 1
    np.savez(tmp_path / "corrupt.npz", **arrays)
    with pytest.raises(ValueError, match="sha256"):
        Codebook.load(tmp_path / "corrupt.npz")


def test_train_codebook_from_shards_writes_codebook_and_training_json(tmp_path):
    paths, _ = write_blob_shards(tmp_path, n_shards=2, proteins_per_shard=30)
    out_npz, out_json = tmp_path / "codebook/codebook_K8.npz", tmp_path / "codebook/training_K8.json"
    options = CodebookOptions(k=N_BLOBS, seed=0, sample_per_shard=400, max_train_residues=600,
                              holdout_fraction=0.2, batch_size=128, max_iter=30)
    codebook = train_codebook_from_shards(paths, out_npz, out_json, options)
    assert Codebook.load(out_npz).sha256 == codebook.sha256
    training = json.loads(out_json.read_text())
    assert training["n_train"] == 600 and training["n_heldout"] > 0
    assert (training["model_name"], training["layer"]) == ("esm2_tiny_random", 2)
    # blobs are recovered: both errors are close to the noise variance
    assert training["train_mse"] == pytest.approx(DIM * 0.3**2, rel=0.3)
    assert training["heldout_mse"] == pytest.approx(DIM * 0.3**2, rel=0.3)
    assert sorted(p.name for p in out_npz.parent.iterdir()) == ["codebook_K8.npz", "training_K8.json"]


def test_usage_metrics_on_constructed_cases():
    uniform = usage_counts(np.arange(16).repeat(3), 16)
    assert perplexity(uniform) == pytest.approx(16)
    assert normalized_entropy(uniform) == pytest.approx(1.0)
    single = usage_counts(np.full(10, 2), 16)
    assert perplexity(single) == pytest.approx(1.0) and normalized_entropy(single) == 0.0
    assert utilization(single) == 1 / 16
    assert dead_codes(single).tolist() == [i for i in range(16) if i != 2]
    half = usage_counts(np.array([0, 0, 1, 1]), 4)
    assert perplexity(half) == pytest.approx(2.0) and utilization(half) == 0.5
    with pytest.raises(ValueError, match="out of range"):
        usage_counts(np.array([4]), 4)


def test_unique_tokens_per_protein():
    tokens = np.array([1, 1, 2, 7, 7, 7, 3], dtype=np.uint16)
    offsets = np.array([0, 3, 3, 6, 7])  # includes an empty protein
    assert unique_tokens_per_protein(tokens, offsets, 8).tolist() == [2, 0, 1, 1]


def test_unique_tokens_per_protein_block_by_block(monkeypatch):
    """The (protein, token) table is filled a block of proteins at a time: same counts as a set per protein."""
    from structure_tokens.codebook import metrics

    monkeypatch.setattr(metrics, "SEEN_TABLE_CELLS", 5000)  # blocks of 9 proteins at k=512
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 300, size=100)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.integers(0, 512, size=offsets[-1]).astype(np.uint16)
    expected = [len(set(tokens[a:b].tolist())) for a, b in zip(offsets[:-1], offsets[1:])]
    assert metrics.unique_tokens_per_protein(tokens, offsets, 512).tolist() == expected


def test_tiny_codes_are_used_by_under_a_hundredth_of_a_percent():
    counts = np.array([20_000, 1, 0, 2, 10_000])  # 0.01% of 30,003 residues is 3.0003
    assert tiny_codes(counts).tolist() == [1, 3]


@pytest.mark.parametrize("values", [[3, 1, 2, 10], [4, 4, 0, 7, 1], [5], [0, 0, 9, 9, 9, 9]])
def test_describe_histogram_matches_numpy_on_the_values(values):
    described = describe_histogram(np.bincount(values, minlength=12))
    assert described == {"mean": pytest.approx(np.mean(values)), "median": np.median(values),
                         "min": min(values), "max": max(values)}


def test_describe_histogram_of_nothing_is_none():
    assert describe_histogram(np.zeros(5, dtype=np.int64))["mean"] is None


def test_training_logs_inits_steps_and_convergence_at_a_bounded_rate(caplog):
    X = np.random.default_rng(0).normal(size=(20000, 16)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="structure_tokens.codebook.kmeans"):
        train_codebook(X, CodebookOptions(k=8, batch_size=1024, max_iter=5, backend="sklearn"), SOURCE)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Inertia for init" in m for m in messages) == 3
    steps = [m for m in messages if m.startswith("k-means step ")]
    assert 1 <= len(steps) <= 11 + 3  # at most one per 10% of the steps (plus the 30 s clock)
    assert re.match(r"k-means step \d+/\d+ \(\d+%\): mean batch inertia [\d.]+, ewa inertia [\d.]+ \([\d.]+ s\)",
                    steps[0])
    assert any("Converged" in m for m in messages)


def test_faiss_import_probing_stays_out_of_a_job_log(tmp_path):
    """faiss's probes for CPU-specific builds (`ModuleNotFoundError(... swigfaiss_avx2 ...)`) are not errors."""
    script = ("import numpy as np\n"
              "from structure_tokens.workflow_logging import configure_logging\n"
              "from structure_tokens.codebook.kmeans import train_codebook\n"
              f"configure_logging({str(tmp_path / 'job.log')!r})\n"
              "X = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)\n"
              "from structure_tokens.codebook.options import CodebookOptions\n"
              "from structure_tokens.formats.provenance import Provenance\n"
              "train_codebook(X, CodebookOptions(k=4, max_iter=3, backend='faiss'), Provenance('m', 1, 8))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "job.log").read_text()
    assert "faiss" in log.lower() or "k-means" in log.lower(), log  # the training itself is logged
    assert "ModuleNotFoundError" not in log + result.stderr and "swigfaiss" not in log + result.stderr
