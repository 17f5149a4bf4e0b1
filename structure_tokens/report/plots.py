"""Report figures: PCA of residue embeddings coloured by token, token usage, token tracks along chains.

This module draws what other stages computed; it computes no metric of its own.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, never windows
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from structure_tokens.codebook.metrics import describe_histogram, perplexity, token_statistics, utilization
from structure_tokens.evaluation.agreement import token_label_table
from structure_tokens.evaluation.labels import SS_STATES
from structure_tokens.evaluation.projection import Projection
from structure_tokens.evaluation.structure_agreement import ESM_METHOD, StructureEvaluation
from structure_tokens.formats.atomic import atomic_output

SS_COLOURS = {"H": "#d62728", "E": "#1f77b4", "C": "#bdbdbd"}
UNDEFINED_COLOUR = "#ffffff"
DPI = 120


def save_figure(fig: plt.Figure, out_png: str | os.PathLike) -> None:
    """Write ``fig`` as PNG atomically and release it."""
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def plot_pca(projection: Projection, out_png: str | os.PathLike) -> None:
    """Residues on the first two principal components, each point coloured by its structure token."""
    points, variance, k = projection.points, projection.variance_percent, projection.k
    fig, ax = plt.subplots(figsize=(7.5, 6))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=projection.tokens, cmap="turbo", vmin=0, vmax=k - 1,
                         s=6, alpha=0.7, linewidths=0)
    fig.colorbar(scatter, ax=ax, label="structure token (codebook index)")
    ax.set_xlabel(f"PC1 ({variance[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({variance[1]:.1f}% of variance)")
    ax.set_title(f"PCA of {len(points)} residue embeddings\n{projection.model_name}, layer {projection.layer}, K={k}")
    fig.tight_layout()
    save_figure(fig, out_png)


def plot_token_usage(token_h5s: Sequence[str | os.PathLike], k: int, out_png: str | os.PathLike) -> None:
    """Left: residues per code, sorted by frequency; right: distinct tokens per protein."""
    counts, distinct_histogram = token_statistics(token_h5s, k)
    fig, (usage_ax, unique_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    ranked = np.sort(counts)[::-1]
    usage_ax.bar(np.arange(k), ranked, width=1.0, color="tab:blue")
    usage_ax.axhline(counts.sum() / k, color="black", linestyle="--", linewidth=1, label="uniform usage")
    usage_ax.set_yscale("symlog", linthresh=1)
    usage_ax.set_xlabel("code rank (most used first)")
    usage_ax.set_ylabel("residues (log scale)")
    usage_ax.legend(loc="lower left")
    usage_ax.set_title(f"Code usage: utilization {utilization(counts):.1%} of K={k}, "
                       f"perplexity {perplexity(counts):.1f}")
    distinct = describe_histogram(distinct_histogram)
    most = int(distinct["max"] or 1)
    bins = np.arange(0.5, most + 1.5) if most <= 60 else 50
    unique_ax.hist(np.arange(k + 1), bins=bins, range=(0.5, most + 0.5), weights=distinct_histogram,
                   color="tab:orange")
    unique_ax.set_xlabel("distinct structure tokens in the protein")
    unique_ax.set_ylabel("proteins")
    unique_ax.set_title(f"Distinct tokens per protein ({distinct_histogram.sum()} proteins, "
                        f"median {distinct['median'] or 0:.0f})")
    fig.tight_layout()
    save_figure(fig, out_png)


def _ss_colours(codes: Sequence[float]) -> np.ndarray:
    """RGBA (n, 4) colours of secondary-structure codes; NaN is drawn as undefined."""
    return np.array([to_rgba(UNDEFINED_COLOUR if np.isnan(c) else SS_COLOURS[SS_STATES[int(c)]]) for c in codes])


def plot_token_tracks(path: str | os.PathLike, evaluation: StructureEvaluation, *, n_shown: int = 4) -> None:
    """PNG of the first ``n_shown`` chains: secondary structure above the ESM and hand-crafted tokens,
    each coloured by the token's majority secondary structure (over all chains), then the ESM token ids."""
    summary, chains, ss = evaluation.summary, evaluation.chains, evaluation.ss
    k, ss_method, model_name = summary["k"], summary["secondary_structure_method"], summary["model_name"]
    tokens_by_method = {method: evaluation.tokens_by_method[method] for method in (ESM_METHOD, "handcrafted_6d")}
    title = (f"Token tracks vs secondary structure: {ESM_METHOD} ({model_name}, K={k}) "
             "and the hand-crafted baseline")
    all_ss = np.concatenate(ss)
    majority_code = {  # token -> code of its most frequent secondary structure over all chains
        method: {
            int(token): SS_STATES.index(row.majority)
            for token, row in token_label_table(np.concatenate(tokens), all_ss, SS_STATES).iterrows()
        }
        for method, tokens in tokens_by_method.items()
    }
    shown = chains[:n_shown]
    figure = Figure(figsize=(12, 1.2 + 1.9 * len(shown)), layout="constrained")
    axes = figure.subplots(len(shown), 1, squeeze=False)[:, 0]
    for i, (ax, chain) in enumerate(zip(axes, shown)):
        rows = {f"secondary structure ({ss_method})": _ss_colours(ss[i])}
        for method, tokens in tokens_by_method.items():
            rows[f"{method}: token's majority SS"] = _ss_colours(
                [majority_code[method].get(int(token), np.nan) for token in tokens[i]]
            )
        rows[f"{ESM_METHOD}: token id (colour = id)"] = colormaps["turbo"](
            tokens_by_method[ESM_METHOD][i] / max(k - 1, 1)
        )
        image = np.stack(list(rows.values()))
        ax.imshow(image, aspect="auto", interpolation="nearest", extent=(0.5, len(chain) + 0.5, len(rows) - 0.5, -0.5))
        ax.set_yticks(range(len(rows)), list(rows))
        ax.set_xlabel("residue position")
        ax.set_title(f"{chain.chain_id} ({len(chain)} residues, {chain.source.name})", fontsize=10)
    legend = [Patch(facecolor=c, edgecolor="black", label=s) for s, c in SS_COLOURS.items()]
    legend.append(Patch(facecolor=UNDEFINED_COLOUR, edgecolor="black", label="undefined"))
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend), title="secondary structure")
    figure.suptitle(title)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
