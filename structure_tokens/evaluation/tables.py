"""Metric tables as small self-contained HTML pages: the Snakemake report shows HTML inline
(a TSV would only be offered as a download)."""

from __future__ import annotations

import html
import os
from typing import Mapping

import pandas as pd

from structure_tokens.atomic import atomic_output
from structure_tokens.report.summary import is_test_model

AGREEMENT_METRICS = {
    "nmi": "NMI (normalized mutual information; 0 = independent, 1 = identical partitions)",
    "ami": "AMI (mutual information adjusted for chance; random tokens score about 0)",
    "purity": "purity (fraction of residues carrying their token's majority label; grows with K)",
}
STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; }
th { background: #eee; }
.warning { background: #fff3cd; border: 2px solid #d39e00; padding: 0.6em; font-weight: bold; }
"""


def model_banner(model_name: str) -> str:
    """HTML naming the model that produced the numbers, with a warning for random/test weights."""
    text = f"<p>Model: <code>{html.escape(model_name)}</code></p>"
    if is_test_model(model_name):
        text += (f'<p class="warning">{html.escape(model_name)} is a random/test checkpoint: its tokens carry '
                 "no structural information, and these numbers say nothing about a trained ESM-2.</p>")
    return text


def write_html_tables(path: str | os.PathLike, title: str, model_name: str,
                      sections: Mapping[str, pd.DataFrame]) -> None:
    """One HTML page: title, model banner, then each titled table (4 significant digits)."""
    body = [f"<h2>{html.escape(title)}</h2>", model_banner(model_name)]
    for heading, frame in sections.items():
        body.append(f"<h3>{html.escape(heading)}</h3>")
        body.append(frame.to_html(float_format=lambda value: f"{value:.4g}", border=0, na_rep="n/a"))
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    with atomic_output(path) as tmp:
        tmp.write_text(page)


def agreement_sections(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The wide agreement table (``<label set>_<metric>`` columns) as one methods x label-sets table
    per metric of :data:`AGREEMENT_METRICS`, after a table describing the tokenizers."""
    label_sets = [column.removesuffix("_nmi") for column in table.columns if column.endswith("_nmi")]
    sections = {"tokenizers": table[["description", "k", "tokens_used"]]}
    for metric, heading in AGREEMENT_METRICS.items():
        sections[heading] = table[[f"{label}_{metric}" for label in label_sets]].set_axis(label_sets, axis=1)
    return sections
