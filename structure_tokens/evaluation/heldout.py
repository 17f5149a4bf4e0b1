"""Codebook quality on held-out proteins (never sampled for training).

A protein is held out when ``codebook.sample.is_heldout(sequence_hash, holdout_fraction)``: the
same split the codebook training used. Its residues are tokenized with the trained codebook and
scored for code usage, quantization error, information about the amino acid, token sensitivity
(fraction of residues whose token changes when Gaussian noise of 1% of the embedding's norm is
added), and (optionally) stability: a second codebook trained with ``seed + 1`` on the same
training sample is compared with the first by the adjusted Rand index of their assignments. The
codebook's centroid distinctiveness (pairwise cosine similarity) is reported with them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from structure_tokens.codebook.assign import assign, check_codebook_matches, mean_squared_error
from structure_tokens.codebook.kmeans import train_codebook
from structure_tokens.codebook.metrics import centroid_similarity, usage_summary
from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.codebook.sample import is_heldout
from structure_tokens.codebook.train import draw_training_sample
from structure_tokens.evaluation.agreement import ContingencyCounts
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.shards import read_shard
from structure_tokens.formats.vocab import AMINO_ACIDS, amino_acid_indices

BLOCK_ROWS = 65536  # held-out residues tokenized at a time
MIN_RESIDUES_PER_CODE = 10  # below this many held-out residues per code, usage figures are mostly chance
log = logging.getLogger(__name__)
RELATIVE_NOISE = 0.01  # token sensitivity: Gaussian noise of 1% of each embedding's norm


@dataclass
class HeldoutCounts:
    """Streaming totals over all held-out residues: memory is O(K x K), not O(residues)."""

    token_vs_amino_acid: ContingencyCounts
    token_vs_stability: ContingencyCounts | None
    squared_error_sum: float = 0.0
    n_proteins: int = 0
    n_changed_by_noise: int = 0


def heldout_blocks(
    embedding_paths: Sequence[str | os.PathLike],
    shard_tsvs: Sequence[str | os.PathLike],
    codebook_npz: str | os.PathLike,
    codebook: Codebook,
    holdout_fraction: float,
) -> Iterator[tuple[np.ndarray, list[str]]]:
    """``(float16 embeddings, sequences)`` of the held-out proteins, at most about BLOCK_ROWS rows at a time.

    ``shard_tsvs[i]`` is the prepared shard whose proteins ``embedding_paths[i]`` embedded.
    """
    if len(embedding_paths) != len(shard_tsvs):
        raise ValueError(f"{len(embedding_paths)} embedding shards but {len(shard_tsvs)} shard tables")
    embeddings: list[np.ndarray] = []
    sequences: list[str] = []
    for embedding_h5, shard_tsv in zip(embedding_paths, shard_tsvs):
        sequence_of = {protein.id: protein.sequence for protein in read_shard(shard_tsv)}
        with EmbeddingShard(embedding_h5) as shard:
            check_codebook_matches(embedding_h5, shard, codebook_npz, codebook)
            for i, (protein_id, sequence_hash) in enumerate(zip(shard.ids, shard.sequence_hashes)):
                if not is_heldout(sequence_hash, holdout_fraction):
                    continue
                if protein_id not in sequence_of:
                    raise ValueError(f"{embedding_h5}: protein {protein_id} is not in {shard_tsv}")
                embedding = shard.protein(i)
                if len(embedding) != len(sequence_of[protein_id]):
                    raise ValueError(f"{embedding_h5}: protein {protein_id} has {len(embedding)} embedded residues "
                                     f"but {len(sequence_of[protein_id])} in {shard_tsv}")
                embeddings.append(embedding)
                sequences.append(sequence_of[protein_id])
                if sum(map(len, embeddings)) >= BLOCK_ROWS:
                    yield np.concatenate(embeddings), sequences
                    embeddings, sequences = [], []
    if embeddings:
        yield np.concatenate(embeddings), sequences


def with_noise(X: np.ndarray, rng: np.random.Generator, relative: float = RELATIVE_NOISE) -> np.ndarray:
    """``X`` plus Gaussian noise whose norm is ``relative`` times each row's norm (random direction)."""
    noise = rng.standard_normal(X.shape).astype(np.float32)
    noise_norm = np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-12)
    return X + noise * (relative * np.linalg.norm(X, axis=1, keepdims=True) / noise_norm)


def stability_codebook(
    train_embedding_paths: Sequence[str | os.PathLike], codebook: Codebook, options: CodebookOptions
) -> tuple[Codebook, int]:
    """A second codebook, seed ``codebook.seed + 1``, fit on the training sample of ``codebook``.

    The sample is drawn again exactly as `train_codebook` drew it (same shards, quotas and seed),
    so only the k-means seed differs. Returns the codebook and the sample size.
    """
    train, _, info = draw_training_sample(train_embedding_paths, options, codebook.seed)
    if len(train) != codebook.n_train:
        raise ValueError(f"re-drawn training sample has {len(train)} residues, but the codebook was trained on "
                         f"{codebook.n_train}: the training shards or codebook options changed since")
    second, _ = train_codebook(train, dataclasses.replace(options, k=codebook.k, seed=codebook.seed + 1),
                               info["provenance"])
    return second, len(train)


def amino_acid_information(counts: ContingencyCounts) -> dict[str, float]:
    """How much the tokens (rows) say about the residue letter (columns): I(T; AA) in bits, NMI, I / H(AA)."""
    aa_entropy = counts.col_entropy_bits()
    mi = counts.mutual_information_bits()
    return {
        "mi_bits": mi,
        "nmi": counts.normalized_mutual_information(),
        "aa_entropy_bits": aa_entropy,
        "fraction_of_aa_entropy": mi / aa_entropy if aa_entropy > 0 else 0.0,
    }


def sample_size_warning(n_residues: int, k: int) -> str | None:
    """Why usage figures from ``n_residues`` held-out residues say little about ``k`` codes, or None."""
    if n_residues >= MIN_RESIDUES_PER_CODE * k:
        return None
    return (f"only {n_residues} held-out residues for K={k} codes ({n_residues / k:.1f} per code, fewer than "
            f"{MIN_RESIDUES_PER_CODE}): codes unused here are not dead codes of the codebook, and utilization "
            "and perplexity are low by chance; raise codebook.holdout_fraction or embed more proteins")


def heldout_metrics(
    embedding_paths: Sequence[str | os.PathLike],
    shard_tsvs: Sequence[str | os.PathLike],
    train_embedding_paths: Sequence[str | os.PathLike],
    codebook_npz: str | os.PathLike,
    options: CodebookOptions,
    *,
    seed_stability: bool,
) -> dict[str, Any]:
    """All held-out metrics of the module docstring as a JSON-ready dict.

    ``embedding_paths``/``shard_tsvs``: the shards whose held-out proteins are scored;
    ``train_embedding_paths``: the shards the codebook was trained on (for the stability refit).
    With no held-out protein, the metrics are None and ``note`` says why.
    """
    codebook = Codebook.load(codebook_npz)
    second, n_train = (stability_codebook(train_embedding_paths, codebook, options)
                       if seed_stability else (None, codebook.n_train))
    counts = HeldoutCounts(ContingencyCounts(codebook.k, len(AMINO_ACIDS)),
                           ContingencyCounts(codebook.k, codebook.k) if second is not None else None)
    rng = np.random.default_rng(codebook.seed)
    for embeddings, sequences in heldout_blocks(embedding_paths, shard_tsvs, codebook_npz, codebook,
                                                options.holdout_fraction):
        X = embeddings.astype(np.float32)
        tokens = assign(X, codebook.centroids)
        counts.squared_error_sum += mean_squared_error(X, codebook.centroids, tokens) * len(X)
        counts.token_vs_amino_acid.add(tokens, np.concatenate([amino_acid_indices(s) for s in sequences]))
        counts.n_proteins += len(sequences)
        counts.n_changed_by_noise += int((assign(with_noise(X, rng), codebook.centroids) != tokens).sum())
        if second is not None:
            counts.token_vs_stability.add(tokens, assign(X, second.centroids))
    n_residues = counts.token_vs_amino_acid.total
    warning = sample_size_warning(n_residues, codebook.k)
    if warning:
        log.warning("%s", warning)
    summary: dict[str, Any] = {
        "model_name": codebook.model_name,
        "weights": codebook.weights,
        "layer": codebook.layer,
        "k": codebook.k,
        "seed": codebook.seed,
        "codebook_sha256": codebook.sha256,
        "holdout_fraction": options.holdout_fraction,
        "n_shards": len(embedding_paths),
        "n_heldout_proteins": counts.n_proteins,
        "n_heldout_residues": n_residues,
        "heldout_residues_per_code": n_residues / codebook.k,
        "warning": warning,
        "n_train": n_train,
    }
    if n_residues == 0:
        return {**summary, "note": f"no protein of the {len(embedding_paths)} embedded shards is held out "
                                   f"(codebook.holdout_fraction={options.holdout_fraction})",
                "usage": None, "mse": None, "amino_acid": None, "seed_stability": None,
                "centroid_similarity": centroid_similarity(codebook.centroids), "noise_sensitivity": None}
    stability = None
    if second is not None:
        stability = {"seeds": [codebook.seed, second.seed], "n_train": n_train,
                     "ari": counts.token_vs_stability.adjusted_rand_index()}
    return {
        **summary,
        "usage": usage_summary(counts.token_vs_amino_acid.row_counts()),
        "mse": counts.squared_error_sum / n_residues,
        "amino_acid": amino_acid_information(counts.token_vs_amino_acid),
        "seed_stability": stability,
        "centroid_similarity": centroid_similarity(codebook.centroids),
        "noise_sensitivity": {"relative_noise": RELATIVE_NOISE,
                              "fraction_changed": counts.n_changed_by_noise / n_residues},
    }
