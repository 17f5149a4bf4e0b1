"""The run summary page of the report: what came in (manifest statuses and reasons), the instruction
data and the embedding throughput per shard, all from the `report` rule's declared inputs. (The time
per rule is not on it: ``structure-tokens run-times``, :mod:`structure_tokens.report.run_times`.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from structure_tokens.report.plots import save_figure
from structure_tokens.report.tables import write_html_tables

MAX_LABELLED_SHARDS = 40  # the throughput figure names each shard up to this many
MAX_LISTED_SHARDS = 100  # the run summary lists each shard up to this many
N_SLOWEST_SHARDS = 10


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


def finetune_table(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """The instruction data at a glance: target, examples per split, proteins left out, warnings."""
    counts = manifest["counts"]
    rows = [("completion text (finetune.target)", manifest.get("target", "function")),
            ("proteins read", counts["proteins_read"]),
            ("proteins without that text (left out)", counts["without_target"]),
            *((f"examples: {split}", info["examples"]) for split, info in manifest["splits"].items()),
            *(("WARNING", warning) for warning in manifest.get("warnings", []))]
    return pd.DataFrame(rows, columns=["what", "value"])


def throughput_tables(throughput: Sequence[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """Embedding throughput for the run summary page: one row per shard up to
    :data:`MAX_LISTED_SHARDS` shards; beyond, one row per rule and device and the slowest shards."""
    columns = ["shard", "residues", "seconds", "residues_per_s", "padding_fraction", "device", "dtype"]
    shards = pd.DataFrame([{column: entry.get(column) for column in columns} for entry in throughput], columns=columns)
    if len(shards) <= MAX_LISTED_SHARDS:
        return {"embedding throughput per shard": shards}
    shards["rule"] = shards["shard"].str.split("/").str[0]
    by_rule = shards.groupby(["rule", "device"]).agg(
        shards=("shard", "size"), residues=("residues", "sum"), seconds=("seconds", "sum"),
        median_residues_per_s=("residues_per_s", "median"), min_residues_per_s=("residues_per_s", "min"),
        max_residues_per_s=("residues_per_s", "max"))
    slowest = shards.nsmallest(N_SLOWEST_SHARDS, "residues_per_s")[columns]
    return {f"embedding throughput by rule and device ({len(shards)} shards)": by_rule.reset_index(),
            f"the {N_SLOWEST_SHARDS} slowest shards": slowest}


def load_throughput(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The per-shard throughput JSON files the embedding jobs wrote, labelled by their rule (without
    their progress samples, which the report does not draw)."""
    loaded = []
    for path in paths:
        entry = json.loads(Path(path).read_text())
        entry.pop("progress", None)
        entry["shard"] = f"{Path(path).parent.name}/{entry['shard']}"
        loaded.append(entry)
    return loaded


def write_run_summary(path: str | os.PathLike, model: tuple[str, str], prepare_summary: Mapping[str, Any],
                      finetune_manifest: Mapping[str, Any], throughput: Sequence[Mapping[str, Any]]) -> None:
    """The run summary page (``report/run_summary.html``) of ``model`` (name, weights origin): input
    records, instruction data and embedding throughput, from what it is given only (no folder of the
    run is looked into)."""
    write_html_tables(path, "Run summary", model, {
        **input_tables(prepare_summary),
        "instruction data (sft/manifest.json)": finetune_table(finetune_manifest),
        **throughput_tables(throughput),
    })


def plot_throughput(throughput: Sequence[Mapping[str, Any]], model_name: str, out_png: str | os.PathLike) -> None:
    """Residues/s of every embedded shard, with the device each ran on, in a figure of fixed size:
    a labelled bar per shard up to :data:`MAX_LABELLED_SHARDS` shards, beyond that a point per
    shard over its shard number (one colour per rule) and the median."""
    fig, ax = plt.subplots(figsize=(10, 4))
    rates = np.array([entry.get("residues_per_s") or 0 for entry in throughput], dtype=float)
    if len(throughput) <= MAX_LABELLED_SHARDS:
        ax.bar(np.arange(len(throughput)), rates, color="tab:green")
        ax.set_xticks(np.arange(len(throughput)), [entry["shard"] for entry in throughput], rotation=90, fontsize=7)
    else:
        rules = [entry["shard"].split("/")[0] for entry in throughput]
        numbers = np.array([int(entry["shard"].rsplit("_", 1)[-1]) for entry in throughput])
        for rule in sorted(set(rules)):
            chosen = np.array([r == rule for r in rules])
            ax.scatter(numbers[chosen], rates[chosen], s=6, linewidths=0, label=f"{rule} ({chosen.sum()} shards)")
        ax.axhline(np.median(rates), color="black", linestyle="--", linewidth=1,
                   label=f"median {np.median(rates):,.0f} residues/s")
        ax.set_xlabel("shard number")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylabel("residues / s")
    devices = sorted({str(entry.get("device")) for entry in throughput})
    ax.set_title(f"Embedding throughput per shard ({model_name}; {', '.join(devices)})")
    fig.tight_layout()
    save_figure(fig, out_png)
