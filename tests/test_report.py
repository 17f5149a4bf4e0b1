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
from structure_tokens.report.run_summary import plot_throughput, throughput_tables, write_run_summary
from structure_tokens.report.run_times import format_rule_times, rule_times
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


BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmarks(folder):
    """Benchmark files as Snakemake writes them: 3 `llm_outputs` shard jobs, a `vocab` job too
    short to sample memory (`-`) and a `train_codebook` job timed twice (`repeat`; the last row counts)."""
    (folder / "llm_outputs").mkdir(parents=True)
    for i in range(3):
        row = f"{i + 1}.5\t0:00:01\t{100 + i}\t1\t1\t1\t0\t0\t0\t1.0\n"
        (folder / f"llm_outputs/shard_{i:05d}.tsv").write_text(BENCHMARK_HEADER + row)
    (folder / "vocab.tsv").write_text(BENCHMARK_HEADER + "0.2\t0:00:00\t-\t-\t-\t-\t-\t-\t-\t0.1\n")
    (folder / "train_codebook.tsv").write_text(BENCHMARK_HEADER + "9.0\t0:00:09\t50\t1\t1\t1\t0\t0\t0\t8.0\n"
                                               "125.25\t0:02:05\t2048.25\t1\t1\t1\t0\t0\t0\t250.0\n")
    (folder / "embed").mkdir()
    (folder / "embed/shard_00000.json").write_text("{}")  # a throughput file, not a benchmark file
    (folder / "embed/shard_00001.tsv").write_text(BENCHMARK_HEADER)  # a job still writing it


def test_rule_times_read_every_benchmark_file(tmp_path):
    write_benchmarks(tmp_path)
    table = rule_times(tmp_path).set_index("rule")
    assert sorted(table.index) == ["llm_outputs", "train_codebook", "vocab"]
    assert table.loc["llm_outputs", "jobs"] == 3 and table.loc["llm_outputs", "wall_s"] == pytest.approx(7.5)
    assert table.loc["llm_outputs", "max_wall_s"] == pytest.approx(3.5)
    assert table.loc["llm_outputs", "max_rss_mib"] == 102 and np.isnan(table.loc["vocab", "max_rss_mib"])
    assert table.loc["train_codebook", ["wall_s", "cpu_s", "max_rss_mib"]].tolist() == [125.25, 250.0, 2048.25]


def test_cli_run_times_prints_the_table_per_rule(tmp_path, capsys):
    from structure_tokens.cli import main

    write_benchmarks(tmp_path / "job_benchmarks")
    assert main(["run-times", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| rule | jobs | wall_s | max_wall_s | cpu_s | max_rss_mib |"
    assert lines[2:] == ["| llm_outputs | 3 | 7.5 | 3.5 | 3 | 102 |",
                         "| train_codebook | 1 | 125 | 125 | 250 | 2,048 |",
                         "| vocab | 1 | 0.2 | 0.2 | 0.1 | - |"]
    assert main(["run-times", str(tmp_path), "--format", "tsv"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["rule", "jobs", "wall_s", "max_wall_s", "cpu_s", "max_rss_mib"]
    assert rows[2] == ["train_codebook", "1", "125.25", "125.25", "250.0", "2048.25"] and rows[3][-1] == ""


def test_cli_run_times_of_a_folder_without_benchmarks(tmp_path, capsys):
    from structure_tokens.cli import main

    assert main(["run-times", str(tmp_path)]) == 1
    assert f"no folder {tmp_path / 'job_benchmarks'}" in capsys.readouterr().err
    (tmp_path / "job_benchmarks").mkdir()
    assert main(["run-times", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("| rule | jobs |") and "no benchmark file" in captured.err
    assert format_rule_times(rule_times(tmp_path), "tsv").splitlines() == [
        "rule\tjobs\twall_s\tmax_wall_s\tcpu_s\tmax_rss_mib"]


def test_run_summary_page_depends_only_on_its_inputs(tmp_path):
    """The page the `report` rule writes reads no benchmark file: adding or removing one in the
    run's job_benchmarks/ (jobs finishing in another order) leaves it byte for byte the same."""
    prepared = {"status_counts": {"kept": 3, "skipped": 1}, "reason_counts": {"too long": 1}, "n_records": 4,
                "n_proteins": 3, "n_residues": 90, "n_shards": 1}
    finetune = {"counts": {"proteins_read": 3, "without_target": 0}, "splits": {"train": {"examples": 3}},
                "warnings": []}
    throughput = [{"shard": "embed/shard_00000", "residues": 90, "seconds": 1.5, "residues_per_s": 60.0,
                   "padding_fraction": 0.1, "device": "cpu", "dtype": "float32"}]
    page = tmp_path / "report/run_summary.html"
    pages = []
    for step in ("none", "added", "removed"):
        if step == "added":
            write_benchmarks(tmp_path / "job_benchmarks")
        elif step == "removed":
            (tmp_path / "job_benchmarks/llm_outputs/shard_00001.tsv").unlink()
        write_run_summary(page, ("esm2_t6_8M_UR50D", "fair-esm"), prepared, finetune, throughput)
        pages.append(page.read_text())
    assert pages[0] == pages[1] == pages[2]
    assert "embedding throughput per shard" in pages[0] and "max_rss" not in pages[0]


def test_pca_rejects_unpaired_files(tokenized, tmp_path):
    with pytest.raises(ValueError, match="same order"):
        pca_projection(tokenized["embeddings"], tokenized["tokens"][::-1], n_residues=10, seed=0)


def test_summary_md(summary, tmp_path):
    prepare = {"n_records": 12, "kept": 10, "skipped": {"contains X at position 3": 2}, "shards": ["shard_00000"]}
    figure = tmp_path / "report/token_usage.png"
    random = dict(summary, weights="random-test")  # as read from write_random_esm2_checkpoint's marker
    text = write_summary_md(tmp_path / "report/summary.md", prepare_summary=prepare, codebook_summary=random,
                            training=TRAINING, files={"figures": [figure]})
    assert (tmp_path / "report/summary.md").read_text() == text
    assert f"WARNING: {summary['model_name']} is a random test checkpoint" in text
    assert "utilization" in text and "contains X at position 3: 2" in text
    assert f"| {summary['examples'][0]['id']} |" in text and "(token_usage.png)" in text
    real = dict(summary, model_name="esm2_t33_650M_UR50D", weights="fair-esm")
    text = write_summary_md(tmp_path / "summary.md", prepare_summary=prepare, codebook_summary=real,
                            training=TRAINING, files={})
    assert "WARNING" not in text
    own = dict(summary, model_name="esm2_tiny_finetuned", weights="unknown")  # no name rule: origin unknown
    text = write_summary_md(tmp_path / "summary.md", prepare_summary=prepare, codebook_summary=own,
                            training=TRAINING, files={})
    assert "WARNING: esm2_tiny_finetuned: weights of unknown origin" in text and "random" not in text
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
