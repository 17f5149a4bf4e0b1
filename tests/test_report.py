"""Codebook summary JSON, report figures and summary.md on small synthetic shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from structure_tokens.codebook.metrics import write_codebook_summary
from structure_tokens.evaluation.projection import pca_projection
from structure_tokens.report.plots import most_used_tokens, plot_pca, plot_token_usage
from structure_tokens.report.summary import write_summary_md
from test_codebook import N_BLOBS
from test_tokenize import tokenized  # noqa: F401  (fixture)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAINING = {"inertia": 12.5, "train_mse": 1.4, "heldout_mse": 1.5, "n_train": 100, "n_heldout": 10,
            "iterations": 7, "seconds": 0.25, "dim": 16}


@pytest.fixture
def summary(tokenized, tmp_path):  # noqa: F811
    training_json = tmp_path / "training.json"
    training_json.write_text(json.dumps(TRAINING))
    out = tmp_path / f"codebook_summary_K{N_BLOBS}.json"
    returned = write_codebook_summary(tokenized["tokens"], tokenized["codebook"], training_json, out)
    assert json.loads(out.read_text()) == returned
    return returned


def test_codebook_summary_counts_every_tokenized_residue(summary, tokenized):  # noqa: F811
    labels = np.concatenate([labels for _, _, labels in tokenized["proteins"].values()])
    used = np.unique(labels)
    assert summary["k"] == N_BLOBS and summary["n_residues"] == len(labels)
    assert summary["n_proteins"] == len(tokenized["proteins"])
    assert summary["utilization"] == pytest.approx(len(used) / N_BLOBS)
    assert summary["dead_codes"] == N_BLOBS - len(used) == len(summary["dead_code_ids"])
    assert 1 <= summary["perplexity"] <= N_BLOBS and 0 < summary["normalized_entropy"] <= 1
    unique = [len(set(labels)) for _, _, labels in tokenized["proteins"].values()]
    assert summary["unique_tokens_per_protein"]["max"] == max(unique)
    assert summary["unique_tokens_per_protein"]["mean"] == pytest.approx(np.mean(unique))
    assert (summary["train_mse"], summary["heldout_mse"], summary["inertia"]) == (1.4, 1.5, 12.5)
    assert summary["model_name"] == "esm2_tiny_random" and len(summary["codebook_sha256"]) == 64
    assert summary["examples"][0]["length"] >= len(summary["examples"][0]["tokens_head"]) > 0


def test_figures_are_pngs(tokenized, tmp_path):  # noqa: F811
    pca, usage = tmp_path / "report/clustering_pca.png", tmp_path / "report/token_usage.png"
    plot_pca(pca_projection(tokenized["embeddings"], tokenized["tokens"], n_residues=150, seed=0), pca)
    plot_token_usage(tokenized["tokens"], N_BLOBS, usage, model_name="esm2_tiny_random", layer=2)
    for path in (pca, usage):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_pca_rejects_unpaired_files(tokenized, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="same order"):
        pca_projection(tokenized["embeddings"], tokenized["tokens"][::-1], n_residues=10, seed=0)


def test_summary_md(summary, tmp_path):
    prepare = {"n_records": 12, "kept": 10, "skipped": {"contains X at position 3": 2}, "shards": ["shard_00000"]}
    figure = tmp_path / "report/token_usage.png"
    text = write_summary_md(tmp_path / "report/summary.md", prepare_summary=prepare, codebook_summary=summary,
                            training=TRAINING, files={"figures": [figure]})
    assert (tmp_path / "report/summary.md").read_text() == text
    assert "WARNING" in text and "esm2_tiny_random" in text  # a random test checkpoint is flagged
    assert "utilization" in text and "contains X at position 3: 2" in text
    assert f"| {summary['examples'][0]['id']} |" in text and "(token_usage.png)" in text
    real = dict(summary, model_name="esm2_t33_650M_UR50D")
    text = write_summary_md(tmp_path / "summary.md", prepare_summary=prepare, codebook_summary=real,
                            training=TRAINING, files={})
    assert "WARNING" not in text


def test_pca_colours_the_ten_most_used_tokens():
    tokens = np.repeat(np.arange(14), [5, 50, 1, 7, 30, 30, 2, 9, 11, 12, 13, 3, 4, 8])
    assert most_used_tokens(tokens) == [1, 4, 5, 10, 9, 8, 7, 13, 3, 0]
    assert most_used_tokens(np.array([2, 2, 0])) == [2, 0]
