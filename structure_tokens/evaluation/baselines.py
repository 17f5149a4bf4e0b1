"""Baseline tokenizers (one uint16 token per residue) to compare the ESM-2 tokens against."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.cluster import KMeans

from structure_tokens.evaluation.labels import SS_STATES
from structure_tokens.formats.vocab import amino_acid_indices


def split_by_lengths(values: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Cut a concatenation back into consecutive pieces of the given lengths."""
    return np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []


def amino_acid_tokens(sequences: Sequence[str]) -> list[np.ndarray]:
    """Token = index of the residue in the 20 standard amino acids (``formats.vocab.AMINO_ACIDS``)."""
    tokens = []
    for number, sequence in enumerate(sequences):
        try:
            tokens.append(amino_acid_indices(sequence))
        except ValueError as error:
            raise ValueError(f"sequence {number}: {error}") from None
    return tokens


def random_tokens(lengths: Sequence[int], k: int, seed: int) -> list[np.ndarray]:
    """Uniform random tokens in [0, k), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, k, size=n, dtype=np.uint16) for n in lengths]


def handcrafted_features(labels: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-residue features (n, 11) of the "6D" baseline from one chain's labels.

    The six features are phi, psi, omega (each as sin and cos), secondary structure (one-hot
    H/E/C), RSA and local contact density. Undefined values stay NaN.
    """
    angles = np.radians(np.column_stack([labels["phi"], labels["psi"], labels["omega"]]))
    ss = labels["ss"]
    one_hot = np.where(np.isnan(ss)[:, None], np.nan, ss[:, None] == np.arange(len(SS_STATES))[None, :])
    return np.column_stack([np.sin(angles), np.cos(angles), one_hot, labels["rsa"], labels["contact_density"]])


def handcrafted_tokens(labels_per_chain: Sequence[Mapping[str, np.ndarray]], k: int, seed: int) -> list[np.ndarray]:
    """The "6D hand-crafted" tokenizer: k-means with ``k`` clusters over standardised features.

    The features (:func:`handcrafted_features`) are standardised over all given residues, and
    undefined values are then set to 0 (the mean). k-means is fit on the same chains it
    tokenizes: a favourable setting for this baseline, since ESM tokens come from a codebook
    trained on other proteins.
    """
    features = [handcrafted_features(labels) for labels in labels_per_chain]
    matrix = np.concatenate(features) if features else np.empty((0, 11))
    if len(matrix) < k:
        raise ValueError(f"hand-crafted baseline: {len(matrix)} residues are fewer than k={k} clusters")
    mean, std = np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0)
    standardised = np.nan_to_num((matrix - mean) / np.where(std > 0, std, 1.0), nan=0.0)
    assignment = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(standardised)
    return split_by_lengths(assignment.astype(np.uint16), [len(f) for f in features])
