"""Agreement between per-residue token assignments and per-residue labels.

Labels are float arrays of integer codes with NaN for undefined residues (see
``structure_tokens.evaluation.labels``); residues whose label is NaN are ignored.
Entropies and mutual information are in bits.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    mutual_info_score,
    normalized_mutual_info_score,
)
from sklearn.metrics.cluster import contingency_matrix

METRICS = ("nmi", "ami", "purity", "mi_bits", "cond_entropy_bits")


def _check_pair(tokens: np.ndarray, labels: np.ndarray) -> None:
    if tokens.shape != labels.shape:
        raise ValueError(f"tokens {tokens.shape} and labels {labels.shape} differ in shape")
    if len(tokens) == 0:
        raise ValueError("no residues to compare")


def entropy_bits(labels: np.ndarray) -> float:
    """Shannon entropy H(L) of a label array."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mutual_information_bits(tokens: np.ndarray, labels: np.ndarray) -> float:
    """I(T; L), e.g. between tokens and amino-acid identity."""
    _check_pair(tokens, labels)
    return float(mutual_info_score(labels, tokens) / np.log(2))


def conditional_entropy_bits(tokens: np.ndarray, labels: np.ndarray) -> float:
    """H(L | T): label uncertainty left once the token is known (0 = tokens determine labels)."""
    return max(entropy_bits(labels) - mutual_information_bits(tokens, labels), 0.0)


def normalized_mutual_information(tokens: np.ndarray, labels: np.ndarray) -> float:
    """I(T; L) / mean(H(T), H(L)) (sklearn's arithmetic normalisation), in [0, 1]."""
    _check_pair(tokens, labels)
    return float(normalized_mutual_info_score(labels, tokens))


def adjusted_mutual_information(tokens: np.ndarray, labels: np.ndarray) -> float:
    """Mutual information corrected for chance (0 for random tokens of any K, 1 for a perfect match)."""
    _check_pair(tokens, labels)
    return float(adjusted_mutual_info_score(labels, tokens))


def purity(tokens: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of residues carrying the majority label of their token (grows with K)."""
    _check_pair(tokens, labels)
    return float(contingency_matrix(labels, tokens, sparse=True).max(axis=0).sum() / len(tokens))


def adjusted_rand_index(tokens_a: np.ndarray, tokens_b: np.ndarray) -> float:
    """Adjusted Rand index of two token assignments of the same residues (e.g. two codebook seeds)."""
    _check_pair(tokens_a, tokens_b)
    return float(adjusted_rand_score(tokens_a, tokens_b))


class ContingencyCounts:
    """Co-occurrence counts of two integer labellings of the same residues, added block by block.

    Memory is ``n_rows x n_cols`` int64 however many residues are added, so metrics over millions of
    residues can stream. The metrics equal those of the functions above on the concatenated arrays.
    """

    def __init__(self, n_rows: int, n_cols: int):
        self.table = np.zeros((n_rows, n_cols), dtype=np.int64)

    def add(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Count the residues of one block: ``rows[i]`` and ``cols[i]`` label residue ``i``."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        _check_pair(rows, cols)
        n_rows, n_cols = self.table.shape
        if rows.min() < 0 or rows.max() >= n_rows or cols.min() < 0 or cols.max() >= n_cols:
            raise ValueError(f"labels outside [0, {n_rows}) x [0, {n_cols})")
        self.table += np.bincount(rows * n_cols + cols, minlength=self.table.size).reshape(self.table.shape)

    @property
    def total(self) -> int:
        return int(self.table.sum())

    def row_counts(self) -> np.ndarray:
        return self.table.sum(axis=1)

    def col_entropy_bits(self) -> float:
        """H of the column labelling."""
        return _counts_entropy_bits(self.table.sum(axis=0))

    def mutual_information_bits(self) -> float:
        """I(rows; cols)."""
        return float(mutual_info_score(None, None, contingency=self.table) / np.log(2))

    def normalized_mutual_information(self) -> float:
        """I / mean(H(rows), H(cols)), with sklearn's conventions for single-label cases."""
        rows_used, cols_used = np.count_nonzero(self.row_counts()), np.count_nonzero(self.table.sum(axis=0))
        if rows_used == cols_used <= 1:
            return 1.0
        mi = self.mutual_information_bits()
        if mi == 0:
            return 0.0
        return mi / ((_counts_entropy_bits(self.row_counts()) + self.col_entropy_bits()) / 2)

    def adjusted_rand_index(self) -> float:
        """ARI of the two labellings, from the pair-confusion counts (exact integers)."""
        n = self.total
        same_both = int((self.table.astype(object) ** 2).sum()) - n
        same_rows = int((self.row_counts().astype(object) ** 2).sum()) - n
        same_cols = int((self.table.sum(axis=0).astype(object) ** 2).sum()) - n
        only_rows, only_cols = same_rows - same_both, same_cols - same_both
        neither = n * n - n - same_both - only_rows - only_cols
        if only_rows == only_cols == 0:
            return 1.0
        denominator = ((same_both + only_rows) * (only_rows + neither)
                       + (same_both + only_cols) * (only_cols + neither))
        return float(2 * (same_both * neither - only_rows * only_cols) / denominator)


def _counts_entropy_bits(counts: np.ndarray) -> float:
    counts = counts[counts > 0]
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def agreement_metrics(tokens: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All of :data:`METRICS` for one token array against one label array (NaN labels dropped)."""
    tokens, labels = _defined(tokens, labels)
    return {
        "nmi": normalized_mutual_information(tokens, labels),
        "ami": adjusted_mutual_information(tokens, labels),
        "purity": purity(tokens, labels),
        "mi_bits": mutual_information_bits(tokens, labels),
        "cond_entropy_bits": conditional_entropy_bits(tokens, labels),
    }


def token_label_table(tokens: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> pd.DataFrame:
    """Per token: residue count, fraction of each label, majority label and its fraction."""
    tokens, labels = _defined(tokens, labels)
    frame = pd.crosstab(pd.Series(tokens, name="token"), pd.Series(labels, name="label"))
    frame = frame.reindex(columns=range(len(label_names)), fill_value=0)
    frame.columns = list(label_names)
    counts = frame.sum(axis=1)
    table = frame.div(counts, axis=0)
    table.insert(0, "count", counts)
    table["majority"] = frame.idxmax(axis=1)
    table["majority_fraction"] = frame.max(axis=1) / counts
    return table


def _defined(tokens: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and integer labels of the residues whose label is defined."""
    tokens, labels = np.asarray(tokens), np.asarray(labels, dtype=np.float64)
    _check_pair(tokens, labels)
    keep = ~np.isnan(labels)
    return tokens[keep].astype(np.int64), labels[keep].astype(np.int64)


def _concatenate(method: str, label_set: str, tokens: Sequence[np.ndarray], labels: Sequence[np.ndarray]):
    if len(tokens) != len(labels):
        raise ValueError(f"{method}: {len(tokens)} token arrays but {len(labels)} chains of {label_set} labels")
    for number, (chain_tokens, chain_labels) in enumerate(zip(tokens, labels)):
        if len(chain_tokens) != len(chain_labels):
            raise ValueError(
                f"{method}: chain {number} has {len(chain_tokens)} tokens but {len(chain_labels)} {label_set} labels"
            )
    return np.concatenate(tokens), np.concatenate(labels)


def chain_folds(n_chains: int, n_folds: int, seed: int) -> np.ndarray:
    """The fold (0..n_folds-1) of every chain: a seeded shuffle dealt round-robin, so folds differ by
    at most one chain (with fewer chains than folds, one chain per fold)."""
    order = np.random.default_rng(seed).permutation(n_chains)
    folds = np.empty(n_chains, dtype=np.int64)
    folds[order] = np.arange(n_chains) % max(1, min(n_folds, n_chains))
    return folds


def probe_accuracy(tokens: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, n_folds: int = 5,
                   seed: int = 0) -> dict[str, float]:
    """How well the tokens predict the labels on chains the predictor has not seen.

    The probe is the simplest classifier of a token: the label most frequent for that token in the
    training chains (the training majority label for a token never seen there). Chains, never
    residues, are split into ``n_folds`` folds; each fold is predicted by a probe fit on the others,
    and accuracy is pooled over the defined labels of all folds. ``majority_acc`` is the rate of
    always predicting the training folds' most frequent label, the bar the probe must clear.
    """
    folds = chain_folds(len(tokens), n_folds, seed)
    correct = majority_correct = total = 0
    for fold in np.unique(folds):
        train = [i for i in range(len(tokens)) if folds[i] != fold]
        test = [i for i in range(len(tokens)) if folds[i] == fold]
        if not train:
            continue
        train_tokens, train_labels = _defined(np.concatenate([tokens[i] for i in train]),
                                              np.concatenate([labels[i] for i in train]))
        test_tokens, test_labels = _defined(np.concatenate([tokens[i] for i in test]),
                                            np.concatenate([labels[i] for i in test]))
        if len(train_labels) == 0 or len(test_labels) == 0:
            continue
        label_codes = train_labels.astype(np.int64)
        majority = np.bincount(label_codes).argmax()
        n_tokens = int(max(train_tokens.max(), test_tokens.max())) + 1
        table = np.zeros((n_tokens, int(max(label_codes.max(), test_labels.max())) + 1), dtype=np.int64)
        np.add.at(table, (train_tokens.astype(np.int64), label_codes), 1)
        predicted = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), majority)[test_tokens.astype(np.int64)]
        correct += int((predicted == test_labels).sum())
        majority_correct += int((test_labels == majority).sum())
        total += len(test_labels)
    return {"probe_acc": correct / total if total else float("nan"),
            "majority_acc": majority_correct / total if total else float("nan")}


def evaluate_tokenizers(
    tokens_by_method: Mapping[str, Sequence[np.ndarray]], labels: Mapping[str, Sequence[np.ndarray]], *,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per method; columns ``tokens_used`` and ``<label set>_<metric>`` for every metric of
    :data:`METRICS` and of :func:`probe_accuracy` (chains split into folds with ``seed``).

    ``tokens_by_method[m][i]`` and ``labels[s][i]`` are per-residue arrays of chain ``i``.
    """
    rows = {}
    for method, tokens in tokens_by_method.items():
        row: dict[str, float] = {"tokens_used": len(np.unique(np.concatenate(tokens)))}
        for label_set, label_arrays in labels.items():
            all_tokens, all_labels = _concatenate(method, label_set, tokens, label_arrays)
            for metric, value in agreement_metrics(all_tokens, all_labels).items():
                row[f"{label_set}_{metric}"] = value
            for metric, value in probe_accuracy(tokens, label_arrays, seed=seed).items():
                row[f"{label_set}_{metric}"] = value
        rows[method] = row
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
    return table.astype({"tokens_used": np.int64})
