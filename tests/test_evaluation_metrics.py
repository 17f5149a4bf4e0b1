"""Agreement metrics, baseline tokenizers and the evaluate_structures entry point."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from structure_tokens.evaluation.heldout import sample_size_warning
from structure_tokens.report.tables import write_heldout_metrics
from structure_tokens.evaluation.structure_agreement import evaluate_structures, write_structure_evaluation
from structure_tokens.report.tracks import plot_token_label_distribution, plot_token_tracks
from structure_tokens.evaluation.agreement import (
    ContingencyCounts,
    adjusted_rand_index,
    agreement_metrics,
    chain_folds,
    conditional_entropy_bits,
    entropy_bits,
    evaluate_tokenizers,
    mutual_information_bits,
    normalized_mutual_information,
    probe_accuracy,
    purity,
    token_label_table,
)
from structure_tokens.evaluation.baselines import amino_acid_tokens, handcrafted_tokens, random_tokens

from conftest import REAL_DATA

SMALL_FILES = [REAL_DATA / "structures" / name for name in ("1ii7.ent.gz", "1fx2.ent.gz")]


def test_tokens_equal_to_labels_agree_perfectly():
    labels = np.random.default_rng(0).integers(0, 3, 1000).astype(np.float64)
    metrics = agreement_metrics(labels.astype(np.uint16), labels)
    assert metrics["nmi"] == pytest.approx(1.0)
    assert metrics["ami"] == pytest.approx(1.0)
    assert metrics["purity"] == 1.0
    assert metrics["cond_entropy_bits"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["mi_bits"] == pytest.approx(entropy_bits(labels))


def test_random_tokens_carry_no_information():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 5000).astype(np.float64)
    tokens = random_tokens([5000], k=8, seed=2)[0]
    metrics = agreement_metrics(tokens, labels)
    assert metrics["nmi"] < 0.05
    assert abs(metrics["ami"]) < 0.01


def test_purity_and_conditional_entropy_on_a_small_example():
    tokens = np.array([0, 0, 0, 1, 1])
    labels = np.array([0, 0, 1, 1, 1])
    assert purity(tokens, labels) == pytest.approx(4 / 5)
    h_two_thirds = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))
    assert conditional_entropy_bits(tokens, labels) == pytest.approx(3 / 5 * h_two_thirds)
    table = token_label_table(tokens, labels.astype(float), ["a", "b"])
    assert table.loc[0, "count"] == 3 and table.loc[0, "a"] == pytest.approx(2 / 3)
    assert list(table["majority"]) == ["a", "b"] and table.loc[1, "majority_fraction"] == 1.0


def test_amino_acid_tokens_mutual_information_equals_amino_acid_entropy():
    sequences = ["ACDEFGHIKLMNPQRSTVWY" * 3, "MKTAYIAKQRQISFVKSHFSRQ"]
    tokens = np.concatenate(amino_acid_tokens(sequences))
    amino_acids = np.array(list("".join(sequences)))
    assert tokens.dtype == np.uint16 and tokens.max() == 19
    assert mutual_information_bits(tokens, amino_acids) == pytest.approx(entropy_bits(amino_acids))
    with pytest.raises(ValueError, match=r"sequence 0: letters \['X'\]"):
        amino_acid_tokens(["ACXD"])


def test_adjusted_rand_index_ignores_token_names():
    tokens = np.random.default_rng(3).integers(0, 10, 2000)
    assert adjusted_rand_index(tokens, (tokens + 7) % 10) == pytest.approx(1.0)
    assert abs(adjusted_rand_index(tokens, np.random.default_rng(4).integers(0, 10, 2000))) < 0.01


@pytest.mark.parametrize("noise", [0, 3, 25])
def test_contingency_counts_added_in_blocks_equal_the_metrics_of_the_whole_arrays(noise):
    rng = np.random.default_rng(noise)
    tokens = rng.integers(0, 40, 10_000)
    labels = (tokens + rng.integers(0, noise + 1, len(tokens))) % 20
    counts = ContingencyCounts(40, 20)
    for start in range(0, len(tokens), 777):
        counts.add(tokens[start:start + 777], labels[start:start + 777])
    assert counts.total == len(tokens) and counts.row_counts().tolist() == np.bincount(tokens, minlength=40).tolist()
    assert counts.col_entropy_bits() == pytest.approx(entropy_bits(labels))
    assert counts.mutual_information_bits() == pytest.approx(mutual_information_bits(tokens, labels))
    assert counts.normalized_mutual_information() == pytest.approx(normalized_mutual_information(tokens, labels))
    assert counts.adjusted_rand_index() == pytest.approx(adjusted_rand_index(tokens, labels), abs=1e-12)


def test_contingency_counts_edge_cases():
    constant = ContingencyCounts(3, 3)
    constant.add(np.zeros(50), np.ones(50))
    assert constant.normalized_mutual_information() == 1.0 and constant.adjusted_rand_index() == 1.0
    with pytest.raises(ValueError, match="outside"):
        constant.add(np.array([3]), np.array([0]))


def test_evaluate_tokenizers_ignores_undefined_labels_and_checks_lengths():
    labels = [np.array([0, 1, np.nan, 1.0]), np.array([np.nan, 0.0, 0.0])]
    perfect = [np.array([5, 6, 9, 6]), np.array([1, 5, 5])]  # disagrees only where labels are NaN
    table = evaluate_tokenizers({"perfect": perfect, "constant": [np.zeros(4), np.zeros(3)]}, {"ss": labels})
    assert table.loc["perfect", "ss_nmi"] == pytest.approx(1.0)
    assert table.loc["perfect", "ss_purity"] == 1.0
    assert table.loc["constant", "ss_purity"] == pytest.approx(3 / 5)
    assert table.loc["perfect", "tokens_used"] == 4
    with pytest.raises(ValueError, match="bad: chain 1 has 2 tokens but 3 ss labels"):
        evaluate_tokenizers({"bad": [np.zeros(4), np.zeros(2)]}, {"ss": labels})


def _synthetic_labels(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "phi": rng.uniform(-180, 180, n),
        "psi": rng.uniform(-180, 180, n),
        "omega": np.append(rng.choice([-179.0, 179.0], n - 1), np.nan),
        "ss": rng.integers(0, 3, n).astype(float),
        "rsa": rng.uniform(0, 1, n),
        "contact_density": rng.integers(4, 30, n).astype(float),
    }


def test_handcrafted_tokens_are_reproducible_and_one_per_residue():
    labels = [_synthetic_labels(60, 0), _synthetic_labels(45, 1)]
    first = handcrafted_tokens(labels, k=8, seed=0)
    assert [len(t) for t in first] == [60, 45] and all(t.dtype == np.uint16 for t in first)
    assert len(np.unique(np.concatenate(first))) == 8
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(handcrafted_tokens(labels, k=8, seed=0)))
    with pytest.raises(ValueError, match="105 residues are fewer than k=200"):
        handcrafted_tokens(labels, k=200, seed=0)


def test_evaluate_structures_end_to_end_with_amino_acid_token_fn(tmp_path):
    folder = tmp_path / "structures"
    folder.mkdir()
    for source in SMALL_FILES:
        shutil.copy(source, folder / source.name)
    out = tmp_path / "out"
    evaluation = evaluate_structures(
        folder,
        token_fn=amino_acid_tokens,
        k=24,  # >= the 20 amino-acid tokens of the fake token_fn
        seed=0,
        model_name="fake_amino_acid_model",
        ss_method="phi_psi",
    )
    write_structure_evaluation(evaluation, out / "metrics.tsv", out / "metrics.json")
    plot_token_tracks(out / "tracks.png", evaluation)
    plot_token_label_distribution(out / "token_3di.png", evaluation)
    table = evaluation.table
    written = pd.read_csv(out / "metrics.tsv", sep="\t", index_col="method")
    assert list(written.index) == ["esm_kmeans", "amino_acid", "random", "handcrafted_6d", "foldseek_3di"]
    assert set(written["model"]) == {"fake_amino_acid_model"}
    assert "fake_amino_acid_model" in written.loc["esm_kmeans", "description"]
    assert written.loc["esm_kmeans", "amino_acid_nmi"] == pytest.approx(1.0)
    assert written.loc["esm_kmeans", "ss_nmi"] == pytest.approx(written.loc["amino_acid", "ss_nmi"], rel=1e-5)
    # the hand-crafted baseline sees the secondary structure as a feature: it must beat random
    assert written.loc["handcrafted_6d", "ss_ami"] > written.loc["random", "ss_ami"] + 0.2
    assert table.shape[0] == 5
    assert written.loc["foldseek_3di", "3di_nmi"] == pytest.approx(1.0)  # 3Di predicts itself
    assert written.loc["foldseek_3di", "3di_probe_acc"] > written.loc["foldseek_3di", "3di_majority_acc"]
    for method in written.index:  # a probe that learned anything beats predicting the majority label
        assert written.loc[method, "amino_acid_majority_acc"] < 0.2

    summary = json.loads((out / "metrics.json").read_text())
    assert summary["model_name"] == "fake_amino_acid_model" and summary["k"] == 24
    assert summary["secondary_structure_method"] == "phi_psi"
    assert [chain["id"] for chain in summary["chains"]] == ["1fx2_A", "1ii7_A"]
    assert summary["n_residues"] == 235 + 43
    assert summary["labels"]["ss"]["classes"] == ["H", "E", "C"]
    three_di = summary["labels"]["3di"]
    assert three_di["n_defined"] + three_di["n_undefined"] == summary["n_residues"] and three_di["n_undefined"] < 20
    assert (out / "tracks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "token_3di.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sensitivity = summary["esm_substitution_sensitivity"]
    assert sensitivity["substitutions"] == 2 * 5 and sensitivity["fraction_changed"] == 0.0  # amino-acid tokens
    assert 5 * (235 + 43 - 2 * 5) <= sensitivity["residues_scored"] <= 5 * (235 + 43 - 2 * 3)
    assert not list(out.glob(".*.tmp"))

    def wrong_length(sequences):
        return [np.zeros(len(s) - 1, dtype=np.uint16) for s in sequences]

    with pytest.raises(ValueError, match="1fx2_A: token_fn returned shape"):
        evaluate_structures(
            folder,
            token_fn=wrong_length,
            k=24,
            seed=0,
            model_name="m",
            ss_method="phi_psi",
        )


def test_probe_on_perfect_and_on_independent_tokens():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, size=n).astype(np.float64) for n in rng.integers(40, 80, size=20)]
    labels[0][:5] = np.nan  # undefined residues are left out
    perfect = [np.nan_to_num(chain, nan=0).astype(np.uint16) for chain in labels]
    assert probe_accuracy(perfect, labels)["probe_acc"] == 1.0
    assert agreement_metrics(np.concatenate(perfect), np.concatenate(labels))["nmi"] == pytest.approx(1.0)
    skewed = [np.where(rng.random(len(chain)) < 0.6, 0, chain) for chain in labels]  # majority label 0 at ~70%
    independent = [rng.integers(0, 16, size=len(chain)).astype(np.uint16) for chain in skewed]
    scores = probe_accuracy(independent, skewed)
    assert scores["majority_acc"] == pytest.approx(0.73, abs=0.03)
    assert abs(scores["probe_acc"] - scores["majority_acc"]) < 0.03  # nothing to learn: the majority rate
    assert agreement_metrics(np.concatenate(independent), np.concatenate(skewed))["ami"] == pytest.approx(0, abs=0.01)


def test_probe_splits_by_chain_never_by_residue():
    folds = chain_folds(7, 5, seed=3)
    assert sorted(np.bincount(folds)) == [1, 1, 1, 2, 2] and np.array_equal(folds, chain_folds(7, 5, seed=3))
    # each chain's tokens are unique to it: a probe that saw the chain would be perfect, held out it is not
    labels = [np.full(30, i % 2, dtype=np.float64) for i in range(10)]
    tokens = [np.full(30, i, dtype=np.uint16) for i in range(10)]
    assert probe_accuracy(tokens, labels)["probe_acc"] == probe_accuracy(tokens, labels)["majority_acc"] < 1


def test_heldout_page_says_how_many_residues_its_figures_rest_on(tmp_path):
    """9 proteins, 1,565 residues at K=512: the page warns that unused codes are not dead codes."""
    assert sample_size_warning(5120, 512) is None
    warning = sample_size_warning(1565, 512)
    assert warning.startswith("only 1565 held-out residues for K=512 codes (3.1 per code, fewer than 10)")
    metrics = {"model_name": "esm2_t33_650M_UR50D", "weights": "fair-esm", "k": 512,
               "n_heldout_proteins": 9, "n_heldout_residues": 1565, "warning": warning,
               "usage": {"utilization": 0.21, "dead_codes": 402}, "mse": 1.0, "amino_acid": None,
               "seed_stability": None}
    write_heldout_metrics(metrics, tmp_path / "m.json", tmp_path / "m.tsv", tmp_path / "m.html")
    page = (tmp_path / "m.html").read_text()
    assert "Warning: only 1565 held-out residues for K=512 codes" in page
    assert "9 / 1565 (3.1)" in page and "codes no held-out residue falls in" in page
    assert "not used to train" not in page and "kept out of the codebook&#x27;s training sample" in page
