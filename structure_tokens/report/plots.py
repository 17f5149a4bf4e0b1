"""Report figures: PCA of residue embeddings coloured by token, token usage (token tracks: ``tracks``).

This module draws what other stages computed; it computes no metric of its own.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, never windows
import matplotlib.pyplot as plt
import numpy as np

from structure_tokens.codebook.metrics import describe_histogram, perplexity, utilization
from structure_tokens.evaluation.projection import Projection
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.vocab import structure_token_names

DPI = 120


def save_figure(fig: plt.Figure, out_png: str | os.PathLike) -> None:
    """Write ``fig`` as PNG atomically and release it."""
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


PCA_COLOURED_TOKENS = 10  # the most used tokens of the sample get a colour each; the rest are grey


def most_used_tokens(tokens: np.ndarray, n: int = PCA_COLOURED_TOKENS) -> list[int]:
    """The ``n`` most frequent tokens, most frequent first (ties: lower token first)."""
    counts = np.bincount(tokens)
    order = np.lexsort((np.arange(len(counts)), -counts))
    return [int(t) for t in order[:n] if counts[t] > 0]


def plot_pca(projection: Projection, out_png: str | os.PathLike) -> None:
    """Residues on the first two principal components: the 10 most used tokens in their own colour
    (legend: token and share of the sample), every other token grey."""
    points, variance, k, tokens = projection.points, projection.variance_percent, projection.k, projection.tokens
    fig, ax = plt.subplots(figsize=(7.5, 6))
    top = most_used_tokens(tokens)
    rest = ~np.isin(tokens, top)
    ax.scatter(points[rest, 0], points[rest, 1], color="0.8", s=5, alpha=0.6, linewidths=0,
               label=f"{k - len(top)} other tokens ({rest.mean():.0%})")
    colours, names = plt.get_cmap("tab10"), structure_token_names(k)
    for rank, token in enumerate(top):
        mine = tokens == token
        ax.scatter(points[mine, 0], points[mine, 1], color=colours(rank % 10), s=7, alpha=0.8, linewidths=0,
                   label=f"{names[token]} ({mine.mean():.1%})")
    ax.legend(title="most used tokens", fontsize=7, title_fontsize=8, markerscale=2, loc="best", framealpha=0.8)
    ax.set_xlabel(f"PC1 ({variance[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({variance[1]:.1f}% of variance)")
    source = projection.provenance
    ax.set_title(f"PCA of {len(points)} residue embeddings\n{source.model_name}, layer {source.layer}, K={k}")
    fig.tight_layout()
    save_figure(fig, out_png)


def plot_token_usage(counts: np.ndarray, distinct_histogram: np.ndarray, out_png: str | os.PathLike, *,
                     model_name: str, layer: int) -> None:
    """Left: residues per code (``counts``), sorted by frequency; right: distinct tokens per protein
    (``distinct_histogram[n]`` proteins with ``n`` distinct tokens)."""
    k = len(counts)
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
    fig.suptitle(f"{model_name}, layer {layer}, K={k}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_png)
