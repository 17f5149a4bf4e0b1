"""Metric tables as small self-contained HTML pages: the Snakemake report shows HTML inline
(a TSV would only be offered as a download)."""

from __future__ import annotations

import html
import os
from typing import Any, Mapping

import pandas as pd

from structure_tokens.codebook.metrics import TINY_CODE_FRACTION
from structure_tokens.formats.atomic import atomic_output, write_json
from structure_tokens.formats.provenance import RANDOM_TEST_WEIGHTS, UNKNOWN_WEIGHTS, weights_note, weights_of
from structure_tokens.report.summary import format_value

AGREEMENT_METRICS = {
    "nmi": "NMI (normalized mutual information; 0 = independent, 1 = identical partitions)",
    "ami": "AMI (mutual information adjusted for chance; random tokens score about 0)",
    "purity": "purity (fraction of residues carrying their token's majority label; grows with K)",
    "probe_acc": "probe accuracy (each token's majority label, learned on other chains: 5 folds by chain)",
    "majority_acc": "majority-class rate on the same held-out chains (what the probe has to beat)",
}
WEIGHTS_LABELS = {RANDOM_TEST_WEIGHTS: " (RANDOM TEST WEIGHTS: no biological meaning)",
                  UNKNOWN_WEIGHTS: " (weights of unknown origin)"}
STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; }
th { background: #eee; }
.warning { background: #fff3cd; border: 2px solid #d39e00; padding: 0.6em; font-weight: bold; }
"""


def model_banner(model_name: str, weights: str) -> str:
    """HTML naming the model that produced the numbers, with a warning unless its weights are a fair-esm release."""
    text = f"<p>Model: <code>{html.escape(model_name)}</code></p>"
    note = weights_note(model_name, weights)
    if note:
        text += f'<p class="warning">{html.escape(note)}.</p>'
    return text


def write_html_tables(path: str | os.PathLike, title: str, model: tuple[str, str],
                      sections: Mapping[str, pd.DataFrame], warning: str | None = None) -> None:
    """One HTML page: title, banner of ``model`` (name, weights origin), a warning when given, then each
    titled table (4 significant digits)."""
    body = [f"<h2>{html.escape(title)}</h2>", model_banner(*model)]
    if warning:
        body.append(f"<p class='warning'>Warning: {html.escape(warning)}</p>")
    for heading, frame in sections.items():
        body.append(f"<h3>{html.escape(heading)}</h3>")
        # a named index becomes the first column (pandas would give it a second, mostly empty header
        # row); an unnamed one is only row numbers and is left out
        if any(name is not None for name in frame.index.names):
            frame = frame.reset_index()
        body.append(frame.to_html(float_format=lambda value: f"{value:.4g}", border=0, na_rep="n/a", index=False))
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


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The headline held-out numbers as a two-column table (metric, value) for the report."""
    usage, aa, stability = metrics["usage"] or {}, metrics["amino_acid"] or {}, metrics["seed_stability"] or {}
    similarity, noise = metrics.get("centroid_similarity") or {}, metrics.get("noise_sensitivity") or {}
    rows = {
        "model": metrics["model_name"] + WEIGHTS_LABELS.get(weights_of(metrics), ""),
        "K": metrics["k"],
        "held-out proteins / residues (residues per code)": "{} / {} ({:.1f})".format(
            metrics["n_heldout_proteins"], metrics["n_heldout_residues"], metrics["n_heldout_residues"] / metrics["k"]),
        "utilization (codes used / K)": usage.get("utilization"),
        "perplexity of code usage": usage.get("perplexity"),
        "normalized entropy": usage.get("normalized_entropy"),
        "codes no held-out residue falls in": usage.get("dead_codes"),
        f"tiny codes (< {TINY_CODE_FRACTION:.2%} of residues)": usage.get("tiny_codes"),
        "quantization error (mean squared distance)": metrics["mse"],
        "I(token; amino acid), bits": aa.get("mi_bits"),
        "I(token; amino acid) / H(amino acid)": aa.get("fraction_of_aa_entropy"),
        "NMI(token, amino acid)": aa.get("nmi"),
        "seed stability: ARI of the assignments of codebook seeds s and s + 1": stability.get("ari"),
        "centroid distinctiveness: mean / max pairwise cosine similarity": "{} / {}".format(
            *(format_value(similarity.get(key)) for key in ("mean_pairwise_cosine", "max_pairwise_cosine"))),
        "token sensitivity: residues whose token changes under 1% Gaussian noise": noise.get("fraction_changed"),
    }
    return pd.DataFrame({"metric": list(rows), "value": [format_value(value) for value in rows.values()]})


def write_heldout_metrics(metrics: dict[str, Any], out_json: str | os.PathLike, out_tsv: str | os.PathLike,
                          out_html: str | os.PathLike) -> None:
    """Write the metrics as JSON and the headline table as TSV and HTML (for the report), atomically."""
    write_json(out_json, metrics)
    table = metrics_table(metrics)
    with atomic_output(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_html_tables(out_html, f"Codebook metrics on held-out proteins (K={metrics['k']})",
                      (metrics["model_name"], weights_of(metrics)),
                      {"proteins embedded but kept out of the codebook's training sample": table.set_index("metric")},
                      warning=metrics.get("warning"))
