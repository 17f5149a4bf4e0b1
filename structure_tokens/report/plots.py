"""Report figures: PCA of residue embeddings coloured by token, and token-usage histograms."""

from __future__ import annotations

import math
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from structure_tokens.atomic import atomic_output  # noqa: E402
from structure_tokens.codebook.metrics import (  # noqa: E402
    describe_histogram,
    perplexity,
    token_statistics,
    utilization,
)
from structure_tokens.codebook.sample import random_rows, read_rows, shard_model  # noqa: E402
from structure_tokens.embed.store import EmbeddingShard  # noqa: E402
from structure_tokens.tokenize.assign import TokenShard  # noqa: E402

DPI = 120


def save_figure(fig: plt.Figure, out_png: str | os.PathLike) -> None:
    """Write ``fig`` as PNG atomically and release it."""
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def sample_tokenized_residues(embedding_paths: Sequence[str | os.PathLike], token_h5s: Sequence[str | os.PathLike],
                              n_residues: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n_residues`` residues spread evenly over the shards: embeddings and their tokens."""
    if len(embedding_paths) != len(token_h5s) or not embedding_paths:
        raise ValueError(f"need matching, non-empty embedding and token lists, got "
                         f"{len(embedding_paths)} and {len(token_h5s)}")
    quota = math.ceil(n_residues / len(embedding_paths))
    embeddings, tokens = [], []
    for position, (embedding_h5, token_h5) in enumerate(zip(embedding_paths, token_h5s)):
        with EmbeddingShard(embedding_h5) as shard, TokenShard(token_h5) as token_shard:
            if list(shard.ids) != token_shard.ids:
                raise ValueError(f"{token_h5} does not hold the proteins of {embedding_h5} in the same order")
            rows = random_rows(shard.n_residues, quota, np.random.default_rng(seed + position))
            embeddings.append(read_rows(shard, rows))
            tokens.append(token_shard.tokens[rows])
    return np.concatenate(embeddings), np.concatenate(tokens)


def plot_pca(embedding_paths: Sequence[str | os.PathLike], token_h5s: Sequence[str | os.PathLike],
             out_png: str | os.PathLike, *, n_residues: int, seed: int) -> None:
    """2-D PCA of a bounded, seeded residue sample, each point coloured by its structure token."""
    X, tokens = sample_tokenized_residues(embedding_paths, token_h5s, n_residues, seed)
    with EmbeddingShard(embedding_paths[0]) as shard:
        model_name, layer = shard_model(embedding_paths[0], shard.attrs)
    with TokenShard(token_h5s[0]) as token_shard:
        k = token_shard.k
    pca = PCA(n_components=2, random_state=seed)
    points = pca.fit_transform(X)
    variance = pca.explained_variance_ratio_ * 100
    fig, ax = plt.subplots(figsize=(7.5, 6))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=tokens, cmap="turbo", vmin=0, vmax=k - 1,
                         s=6, alpha=0.7, linewidths=0)
    fig.colorbar(scatter, ax=ax, label="structure token (codebook index)")
    ax.set_xlabel(f"PC1 ({variance[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({variance[1]:.1f}% of variance)")
    ax.set_title(f"PCA of {len(X)} residue embeddings\n{model_name}, layer {layer}, K={k}")
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
