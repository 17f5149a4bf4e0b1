"""The token-track figure: tokens along real chains next to their secondary structure."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from structure_tokens.evaluation.agreement import token_label_table
from structure_tokens.evaluation.labels import SS_STATES
from structure_tokens.evaluation.structure_agreement import ESM_METHOD, StructureEvaluation
from structure_tokens.formats.atomic import atomic_output

SS_COLOURS = {"H": "#d62728", "E": "#1f77b4", "C": "#bdbdbd"}
UNDEFINED_COLOUR = "#ffffff"


def _ss_colours(codes: Sequence[float]) -> np.ndarray:
    """RGBA (n, 4) colours of secondary-structure codes; NaN is drawn as undefined."""
    return np.array([to_rgba(UNDEFINED_COLOUR if np.isnan(c) else SS_COLOURS[SS_STATES[int(c)]]) for c in codes])


def distinct_chains(chains: Sequence, n: int) -> list[int]:
    """Indices of the first ``n`` chains with a sequence not seen before (homo-oligomers show once)."""
    seen, chosen = set(), []
    for i, chain in enumerate(chains):
        if chain.sequence not in seen and len(chosen) < n:
            seen.add(chain.sequence)
            chosen.append(i)
    return chosen


def plot_token_tracks(path: str | os.PathLike, evaluation: StructureEvaluation, *, n_shown: int = 4) -> None:
    """PNG of the first ``n_shown`` distinct chains: secondary structure above the ESM and hand-crafted tokens,
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
    shown = distinct_chains(chains, n_shown)
    figure = Figure(figsize=(12, 1.2 + 1.9 * len(shown)), layout="constrained")
    axes = figure.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, shown):
        chain = chains[i]
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


def plot_token_label_distribution(path: str | os.PathLike, evaluation: StructureEvaluation, *, label: str = "3di",
                                  n_tokens: int = 64) -> None:
    """Heat map: for the ``n_tokens`` most used ESM tokens, the fraction of their residues in each
    state of ``label`` (Foldseek 3Di by default), from the evaluation's per-token distributions."""
    rows = sorted(evaluation.summary["esm_token_label_distributions"][label], key=lambda row: -row["count"])[:n_tokens]
    states = list(evaluation.summary["labels"][label]["classes"])
    matrix = np.array([[row[state] for state in states] for row in rows])
    model_name, k = evaluation.summary["model_name"], evaluation.summary["k"]
    figure = Figure(figsize=(8, 2 + 0.16 * len(rows)), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(states)), states)
    ax.set_yticks(range(len(rows)), [f"S{int(row['token']):03d} ({row['count']})" for row in rows], fontsize=6)
    ax.set_xlabel(f"{label} state")
    ax.set_ylabel("ESM token (residues), most used first")
    figure.colorbar(image, ax=ax, label="fraction of the token's residues")
    figure.suptitle(f"{label} states per ESM token: {ESM_METHOD} ({model_name}, K={k}), top {len(rows)} tokens")
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
