"""Do ESM-2 k-means tokens describe each residue's local 3D environment? Agreement with real structures.

:func:`evaluate_structures` reads PDB/mmCIF chains, computes per-residue structural labels,
tokenizes the chain sequences with the pipeline's tokens and with baselines (amino-acid
identity, random, a hand-crafted structural k-means) and writes the agreement table,
a JSON summary and a token-track figure.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from structure_tokens.atomic import atomic_output
from structure_tokens.evaluation.agreement import (
    adjusted_rand_index,
    entropy_bits,
    evaluate_tokenizers,
    token_label_table,
)
from structure_tokens.evaluation.baselines import amino_acid_tokens, handcrafted_tokens, random_tokens
from structure_tokens.evaluation.labels import CATEGORICAL_LABELS, SS_STATES, compute_labels, secondary_structure_method
from structure_tokens.evaluation.structures import STANDARD_AMINO_ACIDS, Chain, load_chains

TokenFn = Callable[[list[str]], Sequence[np.ndarray]]
ESM_METHOD = "esm_kmeans"
SS_COLOURS = {"H": "#d62728", "E": "#1f77b4", "C": "#bdbdbd"}
UNDEFINED_COLOUR = "#ffffff"


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


def _ss_colours(codes: Sequence[float]) -> np.ndarray:
    """RGBA (n, 4) colours of secondary-structure codes; NaN is drawn as undefined."""
    return np.array([to_rgba(UNDEFINED_COLOUR if np.isnan(c) else SS_COLOURS[SS_STATES[int(c)]]) for c in codes])


def _label_summary(arrays: Sequence[np.ndarray], classes: Sequence[str]) -> dict:
    """Class names, number of residues with a defined label, and the label entropy over them."""
    values = np.concatenate(arrays)
    defined = values[~np.isnan(values)]
    return {"classes": list(classes), "n_defined": int(defined.size), "entropy_bits": entropy_bits(defined)}


def plot_token_tracks(
    path: str | os.PathLike,
    chains: Sequence[Chain],
    ss: Sequence[np.ndarray],
    tokens_by_method: dict[str, Sequence[np.ndarray]],
    *,
    k: int,
    title: str,
    ss_method: str,
    n_shown: int = 4,
) -> None:
    """PNG of the first ``n_shown`` chains: secondary structure above each method's tokens coloured
    by the token's majority secondary structure (over all ``chains``), then the ESM token ids."""
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


def evaluate_structures(
    folder: str | os.PathLike,
    *,
    token_fn: TokenFn,
    k: int,
    seed: int,
    out_tsv: str | os.PathLike,
    out_json: str | os.PathLike,
    out_png_tracks: str | os.PathLike,
    model_name: str,
    min_length: int = 20,
    n_track_chains: int = 4,
    ss_method: str = "auto",
) -> pd.DataFrame:
    """Score ESM tokens (``token_fn(sequences) -> uint16 arrays``) and baselines against structure labels.

    Writes the metric table (rows = tokenizers, see ``agreement.evaluate_tokenizers``) as TSV,
    a JSON summary (model, K, label definitions, chains, skipped files, metrics) and the
    token-track figure; returns the table.
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
    }
    descriptions = {
        ESM_METHOD: f"k-means codebook (K={k}) over {model_name} per-residue embeddings",
        "amino_acid": "amino-acid identity (20 tokens)",
        "random": f"uniform random tokens (K={k}, seed={seed})",
        "handcrafted_6d": f"k-means (K={k}, seed={seed}) over standardised phi/psi/omega (sin, cos), "
        "secondary structure, RSA and CA contact density, fit on the evaluated chains themselves",
    }
    label_sets = {name: [chain_labels[name] for chain_labels in labels] for name in CATEGORICAL_LABELS}
    label_sets["amino_acid"] = [tokens.astype(np.float64) for tokens in tokens_by_method["amino_acid"]]
    table = evaluate_tokenizers(tokens_by_method, label_sets)
    table.insert(0, "k", [20 if method == "amino_acid" else k for method in table.index])
    table.insert(0, "description", [descriptions[method] for method in table.index])
    table.insert(0, "model", model_name)

    label_classes = {**CATEGORICAL_LABELS, "amino_acid": tuple(STANDARD_AMINO_ACIDS)}
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
    with atomic_output(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", float_format="%.6g")
    with atomic_output(out_json) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    plot_token_tracks(
        out_png_tracks,
        chains,
        label_sets["ss"],
        {method: tokens_by_method[method] for method in (ESM_METHOD, "handcrafted_6d")},
        k=k,
        title=f"Token tracks vs secondary structure: {ESM_METHOD} ({model_name}, K={k}) and the hand-crafted baseline",
        ss_method=ss_method,
        n_shown=n_track_chains,
    )
    return table
