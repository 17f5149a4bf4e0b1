"""Codebook quality: usage statistics of tokens and the ``codebook_summary_K{K}.json`` file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from structure_tokens.codebook.assign import mean_squared_error
from structure_tokens.formats.atomic import write_json
from structure_tokens.formats.codebook import Codebook

__all__ = ["usage_counts", "utilization", "perplexity", "normalized_entropy", "dead_codes",
           "mean_squared_error", "tiny_codes", "unique_tokens_per_protein", "describe_histogram", "shard_token_counts",
           "read_token_counts", "write_codebook_summary"]

TINY_CODE_FRACTION = 1e-4  # codes used by fewer than 0.01% of the residues
SEEN_TABLE_CELLS = 1 << 24  # (protein, token) cells marked at a time: 16 MB
N_EXAMPLES = 3
EXAMPLE_TOKENS = 24


def centroid_similarity(centroids: np.ndarray) -> dict[str, float]:
    """Centroid distinctiveness (StructTokenBench): mean and max cosine similarity over all pairs of
    distinct centroids; near 1 means codes that are nearly the same direction."""
    unit = np.asarray(centroids, dtype=np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    pairs = cosine[np.triu_indices(len(unit), k=1)]
    return {"mean_pairwise_cosine": float(pairs.mean()), "max_pairwise_cosine": float(pairs.max())}


def usage_counts(tokens: np.ndarray, k: int) -> np.ndarray:
    """How many residues carry each of the ``k`` codes (int64, length ``k``)."""
    tokens = np.asarray(tokens)
    if tokens.size and int(tokens.max()) >= k:
        raise ValueError(f"token {int(tokens.max())} is out of range for a codebook of k={k}")
    return np.bincount(tokens.astype(np.int64), minlength=k)


def utilization(counts: np.ndarray) -> float:
    """Fraction of codes used at least once."""
    return float(np.count_nonzero(counts) / len(counts))


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the code-usage distribution; 0 when nothing is counted."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def perplexity(counts: np.ndarray) -> float:
    """``exp(entropy)``: the number of equally used codes with the same entropy (1 .. k)."""
    return math.exp(entropy(counts))


def normalized_entropy(counts: np.ndarray) -> float:
    """Entropy divided by ``log(k)``: 1 for uniform usage, 0 for a single code (1 when k=1)."""
    return entropy(counts) / math.log(len(counts)) if len(counts) > 1 else 1.0


def dead_codes(counts: np.ndarray) -> np.ndarray:
    """Ids of the codes that no residue uses."""
    return np.flatnonzero(counts == 0)


def tiny_codes(counts: np.ndarray, fraction: float = TINY_CODE_FRACTION) -> np.ndarray:
    """Ids of the codes that are used, but by fewer than ``fraction`` of all residues."""
    return np.flatnonzero((counts > 0) & (counts < fraction * counts.sum()))


def describe_histogram(histogram: np.ndarray) -> dict[str, float | None]:
    """Mean, median, min and max of the integers whose counts are ``histogram`` (all None when empty).

    ``histogram[v]`` is how often the value ``v`` occurs; the median follows ``np.median``.
    """
    histogram = np.asarray(histogram, dtype=np.int64)
    n = int(histogram.sum())
    if n == 0:
        return dict.fromkeys(("mean", "median", "min", "max"))
    values = np.flatnonzero(histogram)
    cumulative = np.cumsum(histogram)
    lower, upper = np.searchsorted(cumulative, [(n - 1) // 2 + 1, n // 2 + 1])
    return {"mean": float(np.dot(np.arange(len(histogram)), histogram) / n), "median": float(lower + upper) / 2,
            "min": float(values[0]), "max": float(values[-1])}


def unique_tokens_per_protein(tokens: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
    """Number of distinct tokens of every protein (``tokens[offsets[i]:offsets[i+1]]``).

    Marks each (protein, token) pair seen in a boolean table, a block of proteins at a time
    (at most :data:`SEEN_TABLE_CELLS` cells), then counts the marks of each protein.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    tokens = np.asarray(tokens)
    n_proteins = len(offsets) - 1
    counts = np.zeros(n_proteins, dtype=np.int64)
    block = max(1, SEEN_TABLE_CELLS // max(k, 1))
    for first in range(0, n_proteins, block):
        last = min(first + block, n_proteins)
        start, end = offsets[first], offsets[last]
        owner = np.repeat(np.arange(last - first), np.diff(offsets[first:last + 1]))
        seen = np.zeros((last - first, k), dtype=bool)
        seen[owner, tokens[start:end]] = True
        counts[first:last] = np.count_nonzero(seen, axis=1)
    return counts


def shard_token_counts(shard: str, tokens: np.ndarray, offsets: np.ndarray, n_unique_tokens: np.ndarray,
                       codebook: Codebook, ids: Sequence[str]) -> dict[str, Any]:
    """The token counts of one shard (``token_counts/shard_NNNNN.json``): residues per code, the
    histogram of distinct tokens per protein (``[n]`` proteins with ``n`` distinct tokens, length
    ``k + 1``) and the first proteins' first tokens; summed over shards by :func:`read_token_counts`."""
    k = codebook.k
    return {
        "shard": shard, "k": k, "codebook_sha256": codebook.sha256,
        "n_proteins": len(ids), "n_residues": int(len(tokens)),
        "usage_counts": usage_counts(tokens, k).tolist(),
        "unique_tokens_histogram": np.bincount(n_unique_tokens, minlength=k + 1).tolist(),
        "examples": [{"id": ids[i], "length": int(offsets[i + 1] - offsets[i]),
                      "tokens_head": tokens[offsets[i]:offsets[i + 1]][:EXAMPLE_TOKENS].tolist()}
                     for i in range(min(N_EXAMPLES, len(ids)))],
    }


def read_token_counts(count_jsons: Sequence[str | os.PathLike], k: int,
                      codebook_sha256: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Code usage counts over all shards' token-count files, the histogram of distinct tokens per
    protein, and the first shard's example proteins.

    Fails when a file was made with another codebook. Reads only these small files: memory and
    time do not depend on the number of residues.
    """
    counts = np.zeros(k, dtype=np.int64)
    histogram = np.zeros(k + 1, dtype=np.int64)
    first_examples: list[dict[str, Any]] = []
    for path in count_jsons:
        shard = json.loads(Path(path).read_text())
        if shard["codebook_sha256"] != codebook_sha256 or shard["k"] != k:
            raise ValueError(f"{path} counts tokens of codebook sha256 {shard['codebook_sha256']} (k={shard['k']}), "
                             f"expected {codebook_sha256} (k={k})")
        counts += np.asarray(shard["usage_counts"], dtype=np.int64)
        histogram += np.asarray(shard["unique_tokens_histogram"], dtype=np.int64)
        first_examples = first_examples or shard["examples"]
    return counts, histogram, first_examples


def usage_summary(counts: np.ndarray) -> dict[str, Any]:
    """Utilization, perplexity, normalized entropy, dead and tiny codes of per-code usage counts."""
    dead, tiny = dead_codes(counts), tiny_codes(counts)
    return {
        "utilization": utilization(counts),
        "codes_used": int(np.count_nonzero(counts)),
        "perplexity": perplexity(counts),
        "normalized_entropy": normalized_entropy(counts),
        "dead_codes": len(dead),
        "dead_code_ids": dead.tolist(),
        "tiny_codes": len(tiny),
        "tiny_code_ids": tiny.tolist(),
        "tiny_code_threshold_fraction": TINY_CODE_FRACTION,
    }


def write_codebook_summary(
    count_jsons: Sequence[str | os.PathLike],
    codebook_npz: str | os.PathLike,
    training_json: str | os.PathLike,
    out_json: str | os.PathLike,
) -> dict[str, Any]:
    """Codebook quality on every tokenized residue plus the training errors, from the shards' token
    counts (:func:`shard_token_counts`); written atomically."""
    codebook = Codebook.load(codebook_npz)
    training = json.loads(Path(training_json).read_text())
    counts, distinct_histogram, examples = read_token_counts(count_jsons, codebook.k, codebook.sha256)
    n_residues = int(counts.sum())
    summary = {
        "k": codebook.k,
        "dim": codebook.dim,
        "model_name": codebook.model_name,
        "layer": codebook.layer,
        "weights": codebook.weights,
        "codebook_sha256": codebook.sha256,
        "n_proteins": int(distinct_histogram.sum()),
        "n_residues": n_residues,
        **usage_summary(counts),
        "unique_tokens_per_protein": describe_histogram(distinct_histogram),
        **{key: training.get(key) for key in ("inertia", "train_mse", "heldout_mse", "n_train", "n_heldout")},
        "examples": examples,
    }
    write_json(out_json, summary)
    return summary
