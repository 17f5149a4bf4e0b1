"""Do the tokens describe each residue's local 3D environment? Agreement with real structures.

:func:`evaluate_structures` reads PDB/mmCIF chains, computes per-residue structural labels,
tokenizes the chain sequences with the pipeline's tokens and with baselines (amino-acid
identity, random, a hand-crafted structural k-means) and scores every tokenizer against every
label set; :func:`write_structure_evaluation` writes the table and a JSON summary. The
token-track figure is drawn by :func:`structure_tokens.report.plots.plot_token_tracks`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from structure_tokens.evaluation.agreement import (
    adjusted_rand_index,
    entropy_bits,
    evaluate_tokenizers,
    token_label_table,
)
from structure_tokens.evaluation.baselines import amino_acid_tokens, handcrafted_tokens, random_tokens
from structure_tokens.evaluation.labels import (
    CATEGORICAL_LABELS,
    compute_labels,
    secondary_structure_method,
)
from structure_tokens.evaluation.structures import Chain, load_chains
from structure_tokens.evaluation.three_di import UNDEFINED_TOKEN, three_di_tokens
from structure_tokens.formats.atomic import atomic_output, write_json
from structure_tokens.formats.vocab import AMINO_ACIDS

TokenFn = Callable[[list[str]], Sequence[np.ndarray]]
ESM_METHOD = "esm_kmeans"
THREE_DI_METHOD = "foldseek_3di"


@dataclass
class StructureEvaluation:
    """The result of :func:`evaluate_structures`: the metric table (rows = tokenizers), the JSON
    summary, and the per-chain secondary structure and tokens the token-track figure shows."""

    table: pd.DataFrame
    summary: dict[str, Any]
    chains: list[Chain]
    ss: list[np.ndarray]
    tokens_by_method: dict[str, list[np.ndarray]]


def _checked_tokens(tokens: Sequence[np.ndarray], chains: Sequence[Chain], k: int) -> list[np.ndarray]:
    """The token_fn output as uint16 arrays, checked against the chains and the codebook size."""
    if len(tokens) != len(chains):
        raise ValueError(f"token_fn returned {len(tokens)} token arrays for {len(chains)} chains")
    checked = []
    for chain, chain_tokens in zip(chains, tokens):
        chain_tokens = np.asarray(chain_tokens)
        if chain_tokens.shape != (len(chain),):
            raise ValueError(
                f"{chain.chain_id}: token_fn returned shape {chain_tokens.shape} for {len(chain)} residues"
            )
        if chain_tokens.size and (chain_tokens.min() < 0 or chain_tokens.max() >= k):
            raise ValueError(f"{chain.chain_id}: tokens outside [0, {k})")
        checked.append(chain_tokens.astype(np.uint16))
    return checked


def _label_summary(arrays: Sequence[np.ndarray], classes: Sequence[str]) -> dict:
    """Class names, residues with a defined and an undefined label, and the label entropy over the defined."""
    values = np.concatenate(arrays)
    defined = values[~np.isnan(values)]
    return {"classes": list(classes), "n_defined": int(defined.size), "n_undefined": int(values.size - defined.size),
            "entropy_bits": entropy_bits(defined)}


SUBSTITUTION_CHAINS = 20  # chains probed for token sensitivity to a substitution
SUBSTITUTION_SITES = 5  # substitutions per chain
SUBSTITUTION_MIN_DISTANCE = 3  # residues at least this far from the substitution are scored


def substitution_sensitivity(token_fn: TokenFn, sequences: Sequence[str], seed: int) -> dict[str, Any]:
    """Fraction of residues whose token changes when one residue :data:`SUBSTITUTION_MIN_DISTANCE` or
    more positions away is substituted (StructTokenBench's sensitivity; a structure tokenizer should
    not flip a residue's token for a distant point mutation that leaves the fold alone).

    Up to :data:`SUBSTITUTION_CHAINS` chains, :data:`SUBSTITUTION_SITES` seeded sites each, each
    replaced by a different standard amino acid; averaged over all scored residues.
    """
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(sequences), size=min(SUBSTITUTION_CHAINS, len(sequences)), replace=False))
    mutants, origins = [], []
    for index in chosen:
        sequence = sequences[index]
        for site in rng.choice(len(sequence), size=min(SUBSTITUTION_SITES, len(sequence)), replace=False):
            residue = rng.choice([a for a in AMINO_ACIDS if a != sequence[site]])
            mutants.append(sequence[:site] + residue + sequence[site + 1:])
            origins.append((index, int(site)))
    original = dict(zip(chosen, token_fn([sequences[i] for i in chosen])))
    changed = scored = 0
    for (index, site), tokens in zip(origins, token_fn(mutants)):
        far = np.abs(np.arange(len(tokens)) - site) >= SUBSTITUTION_MIN_DISTANCE
        changed += int((tokens[far] != original[index][far]).sum())
        scored += int(far.sum())
    return {"chains": len(chosen), "substitutions": len(mutants), "min_distance": SUBSTITUTION_MIN_DISTANCE,
            "residues_scored": scored, "fraction_changed": changed / scored if scored else None}


def evaluate_structures(
    folder: str | os.PathLike,
    *,
    token_fn: TokenFn,
    k: int,
    seed: int,
    model_name: str,
    min_length: int = 20,
    ss_method: str = "auto",
) -> StructureEvaluation:
    """Score ESM tokens (``token_fn(sequences) -> uint16 arrays``) and baselines against structure labels.

    The table has one row per tokenizer (see ``agreement.evaluate_tokenizers``); the summary names
    the model, K, label definitions, chains, skipped files and the metrics.
    """
    chains, skipped = load_chains(folder, min_length, skip_unparsable=True)
    if not chains:
        raise ValueError(f"{folder}: no protein chain with >= {min_length} usable residues; skipped: {skipped}")
    ss_method = secondary_structure_method() if ss_method == "auto" else ss_method
    labels = [compute_labels(chain, ss_method) for chain in chains]
    sequences = [chain.sequence for chain in chains]
    lengths = [len(chain) for chain in chains]
    tokens_by_method = {
        ESM_METHOD: _checked_tokens(token_fn(sequences), chains, k),
        "amino_acid": amino_acid_tokens(sequences),
        "random": random_tokens(lengths, k, seed),
        "handcrafted_6d": handcrafted_tokens(labels, k, seed),
        THREE_DI_METHOD: three_di_tokens([chain_labels["3di"] for chain_labels in labels]),
    }
    descriptions = {
        ESM_METHOD: f"k-means codebook (K={k}) over {model_name} per-residue embeddings",
        "amino_acid": "amino-acid identity (20 tokens)",
        "random": f"uniform random tokens (K={k}, seed={seed})",
        "handcrafted_6d": f"k-means (K={k}, seed={seed}) over standardised phi/psi/omega (sin, cos), "
        "secondary structure, RSA and CA contact density, fit on the evaluated chains themselves",
        THREE_DI_METHOD: "Foldseek's 3Di alphabet (20 learned states of the tertiary interaction with the nearest "
        "partner residue; mini3di with Foldseek's weights), token 20 where 3Di is undefined",
    }
    label_sets = {name: [chain_labels[name] for chain_labels in labels] for name in CATEGORICAL_LABELS}
    label_sets["amino_acid"] = [tokens.astype(np.float64) for tokens in tokens_by_method["amino_acid"]]
    table = evaluate_tokenizers(tokens_by_method, label_sets, seed=seed)
    sizes = {"amino_acid": len(AMINO_ACIDS), THREE_DI_METHOD: UNDEFINED_TOKEN + 1}
    table.insert(0, "k", [sizes.get(method, k) for method in table.index])
    table.insert(0, "description", [descriptions[method] for method in table.index])
    table.insert(0, "model", model_name)

    label_classes = {**CATEGORICAL_LABELS, "amino_acid": AMINO_ACIDS}
    summary = {
        "model_name": model_name,
        "esm_method": ESM_METHOD,
        "k": k,
        "seed": seed,
        "structures_folder": str(folder),
        "secondary_structure_method": ss_method,
        "n_chains": len(chains),
        "n_residues": int(sum(lengths)),
        "chains": [{"id": c.chain_id, "file": str(c.source), "length": len(c)} for c in chains],
        "skipped": skipped,
        "labels": {name: _label_summary(arrays, label_classes[name]) for name, arrays in label_sets.items()},
        "methods": descriptions,
        "esm_substitution_sensitivity": substitution_sensitivity(token_fn, sequences, seed),
        "handcrafted_6d_seed_stability_ari": adjusted_rand_index(
            np.concatenate(tokens_by_method["handcrafted_6d"]), np.concatenate(handcrafted_tokens(labels, k, seed + 1))
        ),
        "metrics": table.reset_index().to_dict(orient="records"),
        # per ESM token: residue count, label fractions, majority label, for every label set
        "esm_token_label_distributions": {
            name: token_label_table(np.concatenate(tokens_by_method[ESM_METHOD]), np.concatenate(arrays),
                                    label_classes[name]).reset_index().to_dict(orient="records")
            for name, arrays in label_sets.items()
        },
    }
    return StructureEvaluation(table, summary, chains, label_sets["ss"], tokens_by_method)


def write_structure_evaluation(evaluation: StructureEvaluation, out_tsv: str | os.PathLike,
                               out_json: str | os.PathLike) -> None:
    """The metric table as TSV and the summary as JSON, each written atomically."""
    with atomic_output(out_tsv) as tmp:
        evaluation.table.to_csv(tmp, sep="\t", float_format="%.6g")
    write_json(out_json, evaluation.summary)
