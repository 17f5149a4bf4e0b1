"""Codebook summary JSON, report figures and summary.md on small synthetic shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from structure_tokens.codebook.metrics import read_token_counts, write_codebook_summary
from structure_tokens.evaluation.projection import pca_projection
from structure_tokens.formats.codebook import Codebook
from structure_tokens.llm.finetune import finetune_warnings
from structure_tokens.report.plots import most_used_tokens, plot_pca, plot_token_usage
from structure_tokens.report.run_summary import plot_throughput, rule_times, throughput_tables
from structure_tokens.report.summary import write_summary_md
from conftest import N_BLOBS, write_all_shard_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAINING = {"inertia": 12.5, "train_mse": 1.4, "heldout_mse": 1.5, "n_train": 100, "n_heldout": 10,
            "iterations": 7, "seconds": 0.25, "dim": 16}


@pytest.fixture
def token_counts(tokenized, tmp_path):
    """The shards' token-count files, as the `llm_outputs` jobs write them."""
    write_all_shard_outputs(tokenized, tmp_path)
    return sorted((tmp_path / "token_counts").glob("*.json"))


@pytest.fixture
def summary(tokenized, token_counts, tmp_path):
    training_json = tmp_path / "training.json"
    training_json.write_text(json.dumps(TRAINING))
    out = tmp_path / f"codebook_summary_K{N_BLOBS}.json"
    returned = write_codebook_summary(token_counts, tokenized["codebook"], training_json, out)
    assert json.loads(out.read_text()) == returned
    return returned


def test_codebook_summary_counts_every_tokenized_residue(summary, tokenized):
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


def test_token_counts_of_another_codebook_are_refused(tokenized, token_counts, tmp_path):
    other = Codebook(np.zeros((N_BLOBS, 2), dtype=np.float32), model_name="m", layer=1, seed=0, n_train=1)
    with pytest.raises(ValueError, match=f"{token_counts[0]} counts tokens of codebook sha256"):
        read_token_counts(token_counts, N_BLOBS, other.sha256)


def test_figures_are_pngs(tokenized, token_counts, tmp_path):
    pca, usage = tmp_path / "report/clustering_pca.png", tmp_path / "report/token_usage.png"
    plot_pca(pca_projection(tokenized["embeddings"], tokenized["tokens"], n_residues=150, seed=0), pca)
    codebook = Codebook.load(tokenized["codebook"])
    counts, histogram, _ = read_token_counts(token_counts, N_BLOBS, codebook.sha256)
    plot_token_usage(counts, histogram, usage, model_name="esm2_tiny_random", layer=2)
    for path in (pca, usage):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG (its IHDR chunk)."""
    header = path.read_bytes()[16:24]
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


@pytest.mark.parametrize("n_shards", [3, 1000, 10000])
def test_throughput_figure_and_table_stay_readable_at_any_number_of_shards(tmp_path, n_shards):
    """One labelled bar per shard for a few shards; beyond, points in a figure of the same size, and the
    run summary lists the slowest shards and one row per rule instead of every shard."""
    rng = np.random.default_rng(0)
    throughput = [{"shard": f"{'embed' if i < 20 else 'embed_tokenize'}/shard_{i:05d}", "residues": 450_000,
                   "seconds": 3.0, "residues_per_s": float(rng.normal(150_000, 5_000)), "padding_fraction": 0.02,
                   "device": "cuda", "dtype": "float16"} for i in range(n_shards)]
    out = tmp_path / "throughput.png"
    plot_throughput(throughput, "esm2_t33_650M_UR50D", out)
    assert png_size(out) == (1200, 480)  # 10 x 4 inches at 120 dpi, whatever the number of shards
    tables = throughput_tables(throughput)
    assert sum(len(table) for table in tables.values()) <= max(n_shards, 12)
    if n_shards > 100:
        by_rule = next(table for heading, table in tables.items() if "by rule" in heading)
        assert by_rule.set_index("rule")["shards"].to_dict() == {"embed": 20, "embed_tokenize": n_shards - 20}


def test_rule_times_read_every_benchmark_file(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "llm_outputs").mkdir()
    for i in range(3):
        row = f"{i + 1}.5\t0:00:01\t{100 + i}\t1\t1\t1\t0\t0\t0\t1.0\n"
        (tmp_path / f"llm_outputs/shard_{i:05d}.tsv").write_text(header + row)
    (tmp_path / "vocab.tsv").write_text(header + "0.2\t0:00:00\t-\t-\t-\t-\t-\t-\t-\t0.1\n")  # too short to sample
    table = rule_times(tmp_path).set_index("rule")
    assert table.loc["llm_outputs", "jobs"] == 3 and table.loc["llm_outputs", "wall_s"] == pytest.approx(7.5)
    assert table.loc["llm_outputs", "max_rss_mib"] == 102 and np.isnan(table.loc["vocab", "max_rss_mib"])


def test_pca_rejects_unpaired_files(tokenized, tmp_path):
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
    empty = {"target": "function", "counts": {"proteins_read": 492, "without_target": 492, "examples": 0},
             "warnings": finetune_warnings(492, 0, "function"), "splits": {"train": {"examples": 0}}}
    text = write_summary_md(tmp_path / "summary.md", prepare_summary=prepare, codebook_summary=real,
                            training=TRAINING, files={}, finetune_manifest=empty)
    assert "WARNING: the instruction data is empty: none of the 492 proteins has function text" in text
    assert "finetune.target: description" in text and "- train: 0 examples" in text


def test_pca_colours_the_ten_most_used_tokens():
    tokens = np.repeat(np.arange(14), [5, 50, 1, 7, 30, 30, 2, 9, 11, 12, 13, 3, 4, 8])
    assert most_used_tokens(tokens) == [1, 4, 5, 10, 9, 8, 7, 13, 3, 0]
    assert most_used_tokens(np.array([2, 2, 0])) == [2, 0]
