"""The run summary page of the report: what came in (manifest statuses and reasons), what ran
(time per rule from the Snakemake benchmark files) and the embedding throughput per shard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from structure_tokens.report.plots import save_figure

BENCHMARK_COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mib"}


def input_tables(prepare_summary: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The `prepare` stage's counts: records by manifest status, skipped records by reason, totals."""
    statuses = pd.DataFrame(sorted(prepare_summary["status_counts"].items()), columns=["status", "records"])
    reasons = pd.DataFrame(sorted(prepare_summary["reason_counts"].items()), columns=["reason", "records"])
    totals = pd.DataFrame([("input records", prepare_summary["n_records"]),
                           ("proteins kept", prepare_summary["n_proteins"]),
                           ("residues kept", prepare_summary["n_residues"]),
                           ("shards", prepare_summary["n_shards"])], columns=["what", "count"])
    return {"input (prepared/manifest.tsv, one row per record)": totals,
            "records by manifest status": statuses,
            "records by reason (skipped, or kept with a note)": reasons}


def rule_times(benchmarks_dir: str | os.PathLike) -> pd.DataFrame:
    """Jobs, wall and CPU seconds and peak sampled memory per rule, from ``<rule>.tsv`` and
    ``<rule>/<wildcards>.tsv`` benchmark files (the jobs finished when this is called)."""
    rows = []
    root = Path(benchmarks_dir)
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        frame = pd.read_csv(path, sep="\t")
        rows.append({"rule": rule, **{name: float(frame[column].iloc[-1]) for column, name in
                                      BENCHMARK_COLUMNS.items() if column in frame}})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", *BENCHMARK_COLUMNS.values()])
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("rule").agg(jobs=("rule", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                     max_rss_mib=("max_rss_mib", "max"))
    return table.reset_index()


def throughput_table(throughput: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per embedded shard: residues, seconds, residues/s, padding, device."""
    columns = ["shard", "residues", "seconds", "residues_per_s", "padding_fraction", "device", "dtype"]
    return pd.DataFrame([{column: entry.get(column) for column in columns} for entry in throughput], columns=columns)


def load_throughput(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The per-shard throughput JSON files the embedding jobs wrote, labelled by their rule."""
    loaded = []
    for path in paths:
        entry = json.loads(Path(path).read_text())
        entry["shard"] = f"{Path(path).parent.name}/{entry['shard']}"
        loaded.append(entry)
    return loaded


def plot_throughput(throughput: Sequence[Mapping[str, Any]], model_name: str, out_png: str | os.PathLike) -> None:
    """Residues/s of every embedded shard (bars), with the device each ran on."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(throughput) + 2), 4))
    rates = [entry.get("residues_per_s") or 0 for entry in throughput]
    ax.bar(np.arange(len(throughput)), rates, color="tab:green")
    ax.set_xticks(np.arange(len(throughput)), [entry["shard"] for entry in throughput], rotation=90, fontsize=7)
    ax.set_ylabel("residues / s")
    devices = sorted({str(entry.get("device")) for entry in throughput})
    ax.set_title(f"Embedding throughput per shard ({model_name}; {', '.join(devices)})")
    fig.tight_layout()
    save_figure(fig, out_png)
