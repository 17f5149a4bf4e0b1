"""The evaluation rules in the workflow: held-out codebook metrics, agreement with real structures
(a few shared PDB/mmCIF files, tiny random ESM-2) and the Snakemake HTML report."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from structure_tokens.codebook.sample import is_heldout
from structure_tokens.formats.tokens import TokenShard

from conftest import REAL_DATA, run_snakemake, write_test_config

K = 16  # tests/data/workflow_config.yaml

STRUCTURE_FILES = ("1A8O.cif.gz", "4CUP.cif.gz", "4ZHL.cif.gz", "1fx2.ent.gz", "2hhb.ent.gz")
MODEL = "esm2_t2_32_tiny_random"  # the stem of the tiny_checkpoint fixture
METHODS = {"esm_kmeans", "amino_acid", "random", "handcrafted_6d", "foldseek_3di"}

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_checkpoint):
    """The workflow with `evaluation.structures` set to copies of a few shared structure files."""
    workdir = tmp_path_factory.mktemp("evaluation")
    structures = workdir / "structures"
    structures.mkdir()
    for name in STRUCTURE_FILES:
        shutil.copy(REAL_DATA / "structures" / name, structures)
    evaluation = {"structures": str(structures), "min_chain_length": 20, "track_chains": 3,
                  "secondary_structure": "auto", "seed_stability": True}
    config = write_test_config(workdir, tiny_checkpoint, evaluation=evaluation)
    run_snakemake(workdir, "--configfile", str(config), "--cores", "2")
    return workdir / "results"


def test_cli_run_times_reads_the_runs_benchmark_files(run, capsys):
    from structure_tokens.cli import main

    assert main(["run-times", str(run), "--format", "tsv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t", index_col="rule")
    assert {"prepare", "embed", "train_codebook", "report"} <= set(table.index)
    assert table.loc["embed", "jobs"] == len(list((run / "job_benchmarks/embed").glob("*.tsv")))
    assert (table.wall_s >= table.max_wall_s).all() and (table.wall_s > 0).all()


def test_lint_is_clean_with_structures_enabled(run):
    run_snakemake(run.parent, "--configfile", str(run.parent / "config.yaml"), "--lint")


def test_structure_agreement_table_has_every_baseline(run):
    table = pd.read_csv(run / f"evaluation/structures/agreement_K{K}.tsv", sep="\t", index_col="method")
    assert set(table.index) == METHODS
    assert (table.model == MODEL).all()
    nmi = table[[column for column in table.columns if column.endswith("_nmi")]]
    assert ((nmi >= 0) & (nmi <= 1 + 1e-9)).all().all()
    assert table.loc["amino_acid", "amino_acid_nmi"] == pytest.approx(1.0)  # the letter predicts itself
    assert abs(table.loc["random", "ss_ami"]) < 0.05  # chance-corrected: random tokens carry nothing
    assert table.loc["handcrafted_6d", "ss_nmi"] > table.loc["random", "ss_nmi"]
    assert table.loc["foldseek_3di", "3di_nmi"] == pytest.approx(1.0) and table.loc["foldseek_3di", "k"] == 21
    for method in METHODS:  # the probe columns, next to the majority rate they have to beat
        assert 0 <= table.loc[method, "ss_probe_acc"] <= 1 and 0 < table.loc[method, "ss_majority_acc"] < 1
    assert table.loc["foldseek_3di", "ss_probe_acc"] > table.loc["random", "ss_probe_acc"]
    summary = json.loads((run / f"evaluation/structures/agreement_K{K}.json").read_text())
    assert summary["model_name"] == MODEL and summary["k"] == K
    per_token = summary["esm_token_label_distributions"]["ss"]
    assert sum(row["count"] for row in per_token) == summary["labels"]["ss"]["n_defined"]
    assert all(0 < row["majority_fraction"] <= 1 for row in per_token)
    assert {chain["file"].rsplit("/", 1)[-1] for chain in summary["chains"]} == {
        name.rsplit("/", 1)[-1] for name in STRUCTURE_FILES}
    assert sum(chain["length"] for chain in summary["chains"]) == summary["n_residues"]
    page = (run / f"evaluation/structures/agreement_K{K}.html").read_text()
    assert MODEL in page and "random test checkpoint" in page and "handcrafted_6d" in page


def heldout_tokens_from_token_files(run, holdout_fraction: float) -> tuple[np.ndarray, int]:
    """The `tokenize` rule's tokens of every held-out protein, and the number of those proteins."""
    tokens, proteins = [], 0
    for path in sorted((run / "tokens").glob("shard_*.h5")):
        with TokenShard(path) as shard:
            for i, sequence_hash in enumerate(shard.sequence_hashes):
                if is_heldout(sequence_hash, holdout_fraction):
                    tokens.append(shard.protein(i))
                    proteins += 1
    return np.concatenate(tokens), proteins


def test_heldout_metrics(run):
    metrics = json.loads((run / f"evaluation/heldout_metrics_K{K}.json").read_text())
    assert metrics["model_name"] == MODEL and metrics["weights"] == "random-test"
    tokens, n_proteins = heldout_tokens_from_token_files(run, metrics["holdout_fraction"])
    assert metrics["n_heldout_proteins"] == n_proteins > 0
    assert metrics["n_heldout_residues"] == len(tokens)
    assert (metrics["warning"] is not None) == (len(tokens) < 10 * K)
    usage = metrics["usage"]
    used = len(np.unique(tokens))
    assert usage["codes_used"] == used and usage["utilization"] == pytest.approx(used / K)
    assert usage["dead_codes"] == K - used == len(usage["dead_code_ids"])
    assert 1 <= usage["perplexity"] <= used and 0 <= usage["normalized_entropy"] <= 1
    assert metrics["mse"] > 0
    aa = metrics["amino_acid"]
    assert 0 <= aa["mi_bits"] <= aa["aa_entropy_bits"] <= np.log2(20)
    assert 0 <= aa["nmi"] <= 1 and aa["fraction_of_aa_entropy"] == pytest.approx(aa["mi_bits"] / aa["aa_entropy_bits"])
    stability = metrics["seed_stability"]
    assert stability["seeds"] == [0, 1] and -1 <= stability["ari"] <= 1
    training = json.loads((run / f"codebook/training_K{K}.json").read_text())
    assert stability["n_train"] == training["n_train"]
    table = pd.read_csv(run / f"evaluation/heldout_metrics_K{K}.tsv", sep="\t", index_col="metric")
    assert MODEL in table.loc["model", "value"] and "RANDOM TEST WEIGHTS" in table.loc["model", "value"]


def test_html_report_shows_every_figure_and_table(run):
    config = run.parent / "config.yaml"
    run_snakemake(run.parent, "--configfile", str(config), "--report", "report.html")
    page = (run.parent / "report.html").read_text()
    for name in ("clustering_pca.png", "token_usage.png", f"token_tracks_K{K}.png", f"token_3di_K{K}.png",
                 f"agreement_K{K}.html",
                 f"heldout_metrics_K{K}.html"):
        assert name in page, name
    assert MODEL in page and "randomly initialised test checkpoint" in page


class Tables(HTMLParser):
    """The tables of an HTML page: per table, its header rows (lists of <th> texts) and cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"header_rows": [], "cells": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td"):
            self._cell = [tag, ""]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(tuple(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if all(kind == "th" for kind, _ in self._row):
                self.tables[-1]["header_rows"].append([text.strip() for _, text in self._row])
            self.tables[-1]["cells"] += [text.strip() for _, text in self._row]
            self._row = None


def embedded_pages(report_html: str) -> dict[str, str]:
    """The HTML pages the Snakemake report embeds, by file name."""
    return {name: base64.b64decode(data).decode() for name, data in
            re.findall(r"data:text/html;charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", report_html)}


def test_report_pages_have_the_manifest_summary_and_no_empty_header_rows(run):
    config = run.parent / "config.yaml"
    run_snakemake(run.parent, "--configfile", str(config), "--report", "report.html")
    pages = embedded_pages((run.parent / "report.html").read_text())
    assert {"run_summary.html", f"agreement_K{K}.html", f"heldout_metrics_K{K}.html"} <= set(pages)
    for name, page in pages.items():
        parser = Tables()
        parser.feed(page)
        assert parser.tables, name
        for table in parser.tables:
            assert len(table["header_rows"]) == 1 and all(table["header_rows"][0]), (name, table["header_rows"])
    summary = Tables()
    summary.feed(pages["run_summary.html"])
    statuses = next(t for t in summary.tables if t["header_rows"][0] == ["status", "records"])
    prepared = json.loads((run / "prepared/prepare_summary.json").read_text())
    assert statuses["cells"][2:] == [str(x) for item in sorted(prepared["status_counts"].items()) for x in item]
    assert not any(t["header_rows"][0][:2] == ["rule", "jobs"] for t in summary.tables)  # `run-times` has them
    home = (run.parent / "report.html").read_text()
    assert "esm2_t2_32_tiny_random</code>" in home or MODEL in home
    assert "layer 2" in home and "layer -1" not in home  # the resolved layer of the 2-layer test model
    assert "border:2px solid #d39e00" in home  # the random-weights warning stands out
