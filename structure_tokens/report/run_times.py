"""Time and memory per rule of a run, from the Snakemake ``benchmark:`` files its jobs wrote
(``<output_dir>/job_benchmarks/<rule>.tsv`` and ``<rule>/<wildcards>.tsv``).

Read on request (``structure-tokens run-times OUTPUT_DIR``), never by the workflow: the files are
outputs of the jobs they time, so a report made from them would depend on which jobs had finished.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pandas as pd

BENCHMARK_COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mib"}
RULE_TIME_COLUMNS = ["rule", "jobs", "wall_s", "max_wall_s", "cpu_s", "max_rss_mib"]
BENCHMARKS_FOLDER = "job_benchmarks"


def read_benchmark(path: str | os.PathLike) -> dict[str, float] | None:
    """The last row of a Snakemake ``benchmark:`` file, the columns of :data:`BENCHMARK_COLUMNS`
    (``-``, not measured, as NaN); None for a file without a row of values (being written)."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t") if row]
    if len(rows) < 2:
        return None
    values = dict(zip(rows[0], rows[-1]))
    return {name: float(values[column]) if values.get(column, "-") != "-" else math.nan
            for column, name in BENCHMARK_COLUMNS.items()}


def rule_times(benchmarks_dir: str | os.PathLike) -> pd.DataFrame:
    """Jobs, total and longest wall seconds, CPU seconds and peak sampled memory per rule, from the
    benchmark files under ``benchmarks_dir`` as they are when this is called."""
    root = Path(benchmarks_dir)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        measured = read_benchmark(path)
        if measured is not None:
            rows.append({"rule": path.relative_to(root).parts[0].removesuffix(".tsv"), **measured})
    if not rows:
        return pd.DataFrame(columns=RULE_TIME_COLUMNS)
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("rule").agg(jobs=("rule", "size"), wall_s=("wall_s", "sum"), max_wall_s=("wall_s", "max"),
                                     cpu_s=("cpu_s", "sum"), max_rss_mib=("max_rss_mib", "max"))
    return table.reset_index()[RULE_TIME_COLUMNS]


def format_rule_times(table: pd.DataFrame, fmt: str = "markdown") -> str:
    """``markdown``: a table to read or paste, numbers rounded, ``-`` where nothing was measured;
    ``tsv``: tab-separated with a header, full precision, empty where nothing was measured."""
    if fmt == "tsv":
        return table.to_csv(sep="\t", index=False, na_rep="", lineterminator="\n")
    if fmt != "markdown":
        raise ValueError(f"unknown format {fmt!r} (markdown or tsv)")

    def cell(value) -> str:
        if isinstance(value, str):
            return value
        if pd.isna(value):
            return "-"
        return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"

    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" if column == "rule" else "--:" for column in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
