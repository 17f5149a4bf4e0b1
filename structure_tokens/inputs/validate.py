"""Sequence and id validation: the documented policy for what is kept, mapped or skipped."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
# Non-standard letters mapped by `nonstandard_residues: map`: selenocysteine and pyrrolysine to
# their closest standard residue, the ambiguity codes to one of their two readings.
NONSTANDARD_MAP = {"U": "C", "O": "K", "B": "D", "Z": "E", "J": "L"}
NONSTANDARD_POLICIES = ("map", "reject")
ESM2_WINDOW = 1022  # residues ESM-2 sees at once: 1024 positions minus BOS and EOS
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:|+-]{0,127}$")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Validated:
    """A cleaned sequence, or the reason the record is skipped (``code``: a short category)."""

    sequence: str | None
    reason: str = ""
    code: str = ""


def sequence_hash(sequence: str) -> str:
    """sha256 hex digest of a cleaned sequence: identical sequences share it."""
    return hashlib.sha256(sequence.encode("ascii")).hexdigest()


def check_id(input_id: str) -> str:
    """Empty string when ``input_id`` is safe as a key, else the reason it is not."""
    if not input_id:
        return "empty id"
    if SAFE_ID.fullmatch(input_id):
        return ""
    return f"unsafe id {input_id!r} (allowed: {SAFE_ID.pattern})"


def clean_sequence(raw: str | None, nonstandard: str = "map") -> Validated:
    """Upper-case, drop whitespace and one trailing ``*``, apply the non-standard residue policy."""
    if nonstandard not in NONSTANDARD_POLICIES:
        raise ValueError(f"nonstandard_residues must be one of {NONSTANDARD_POLICIES}, got {nonstandard!r}")
    if raw is None:
        return Validated(None, "record has no sequence", "no_sequence")
    sequence = _WHITESPACE.sub("", raw)
    if not sequence.isascii():  # str.upper() would turn e.g. 'ß' into 'SS'
        position, character = next((i, c) for i, c in enumerate(sequence, start=1) if not c.isascii())
        return Validated(None, f"invalid character {character!r} at position {position}", "invalid_character")
    sequence = sequence.upper()
    if sequence.endswith("*"):
        sequence = sequence[:-1]
    if not sequence:
        return Validated(None, "empty sequence", "empty_sequence")
    residues = []
    for position, residue in enumerate(sequence, start=1):
        if residue in STANDARD_RESIDUES:
            residues.append(residue)
        elif residue in NONSTANDARD_MAP and nonstandard == "map":
            residues.append(NONSTANDARD_MAP[residue])
        elif residue in NONSTANDARD_MAP:
            return Validated(None, f"non-standard residue {residue} at position {position}", "nonstandard_residue")
        elif residue == "X":
            return Validated(None, f"unknown residue X at position {position}", "unknown_residue")
        else:
            return Validated(None, f"invalid character {residue!r} at position {position}", "invalid_character")
    return Validated("".join(residues))
