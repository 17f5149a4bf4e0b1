"""Foldseek's 3Di structural alphabet for the evaluated chains, with mini3di (NumPy, Foldseek's weights).

3Di describes each residue by its tertiary interaction with its nearest partner residue, in 20
learned states (van Kempen et al., Nature Biotechnology 2024). mini3di needs the N, CA, C and CB
coordinates; a residue without CB (glycine) gets one from the backbone, as in Foldseek. Residues
mini3di cannot encode (no usable partner or neighbours, e.g. at chain breaks) are undefined: NaN as
a label, the extra token :data:`UNDEFINED_TOKEN` as a tokenizer.
"""

from __future__ import annotations

import functools

import numpy as np

from structure_tokens.evaluation.structures import Chain

THREE_DI_STATES = tuple("ACDEFGHIKLMNPQRSTVWY")  # Foldseek's letters for the 20 states, in state order
UNDEFINED_TOKEN = len(THREE_DI_STATES)  # the baseline's token for residues 3Di leaves undefined


@functools.cache
def encoder():
    """mini3di's encoder with Foldseek's weights (loaded once)."""
    import mini3di

    return mini3di.Encoder()


def three_di_states(chain: Chain) -> np.ndarray:
    """3Di state (0..19) of every residue of ``chain`` as float64, NaN where mini3di cannot encode it.

    CB comes from the chain's residues; without them (e.g. a chain built from backbone
    coordinates only) every CB is placed from the backbone, as for glycine.
    """
    backbone = chain.backbone.astype(np.float32)
    cb = np.full((len(backbone), 3), np.nan, dtype=np.float32)
    if len(chain.residues) == len(backbone):
        for i, residue in enumerate(chain.residues):
            if "CB" in residue:
                cb[i] = residue["CB"].coord
    states = encoder().encode_atoms(ca=backbone[:, 1], cb=cb, n=backbone[:, 0], c=backbone[:, 2])
    values = np.asarray(states.data, dtype=np.float64)
    values[np.ma.getmaskarray(states)] = np.nan
    return values


def three_di_string(states: np.ndarray) -> str:
    """States as Foldseek's letters, ``-`` where undefined."""
    return "".join("-" if np.isnan(state) else THREE_DI_STATES[int(state)] for state in states)


def three_di_tokens(states_per_chain: list[np.ndarray]) -> list[np.ndarray]:
    """The 3Di baseline tokenizer: the state, or :data:`UNDEFINED_TOKEN`, as uint16 per residue."""
    return [np.where(np.isnan(states), UNDEFINED_TOKEN, states).astype(np.uint16) for states in states_per_chain]
