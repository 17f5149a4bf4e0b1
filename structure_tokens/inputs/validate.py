"""Sequence and id validation: the documented policy for what is kept, mapped or skipped."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from structure_tokens.inputs.records import InputRecord

STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
# Non-standard letters mapped by `nonstandard_residues: map`: selenocysteine and pyrrolysine to
# their closest standard residue, the ambiguity codes to one of their two readings.
NONSTANDARD_MAP = {"U": "C", "O": "K", "B": "D", "Z": "E", "J": "L"}
NONSTANDARD_POLICIES = ("map", "reject")
ESM2_WINDOW = 1022  # residues ESM-2 sees at once: 1024 positions minus BOS and EOS
LONG_POLICIES = ("windows", "truncate", "skip")  # what becomes of proteins longer than ESM2_WINDOW
TEXT_FIELDS = ("description", "function", "instruction")  # record texts that reach the outputs
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


@dataclass(frozen=True)
class RecordRules:
    """What a record must be to be kept: the ``input:`` selection keys and ``model.long_policy``."""

    nonstandard_residues: str = "map"
    min_length: int = 1
    max_length: int | None = None
    long_policy: str = "windows"

    def __post_init__(self) -> None:
        if self.nonstandard_residues not in NONSTANDARD_POLICIES:
            raise ValueError(f"nonstandard_residues must be one of {NONSTANDARD_POLICIES}, "
                             f"got {self.nonstandard_residues!r}")
        if self.long_policy not in LONG_POLICIES:
            raise ValueError(f"long_policy must be one of {LONG_POLICIES}, got {self.long_policy!r}")


@dataclass(frozen=True)
class Verdict:
    """What becomes of one record: kept with ``sequence`` (as it is embedded), or skipped.

    A skipped record has ``reason`` and ``code`` (a short category). ``digest`` and ``length``
    are set once the sequence is valid, also for records skipped by their length. ``notes`` say
    what was changed or noticed in a kept record; ``counted`` are their categories.
    """

    sequence: str | None
    reason: str = ""
    code: str = ""
    digest: str = ""
    length: int | None = None
    notes: tuple[str, ...] = ()
    counted: tuple[str, ...] = ()

    @property
    def kept(self) -> bool:
        return self.sequence is not None


def judge(record: InputRecord, rules: RecordRules, earlier_index: int | None = None) -> Verdict:
    """The verdict of ``rules`` on one record; ``earlier_index``: an earlier record with the same id, if any.

    Checked in this order: the id (valid UTF-8, safe as a key, not seen before), the sequence
    (:func:`clean_sequence`), ``min_length``/``max_length``, then the long-sequence policy:
    ``skip`` skips proteins over :data:`ESM2_WINDOW`, ``truncate`` keeps their first residues
    (noted), ``windows`` keeps them whole. Pure: no state, no files.
    """
    if "\ufffd" in record.input_id:
        return Verdict(None, f"id {record.input_id!r} has bytes that are not UTF-8", "invalid_utf8")
    id_problem = check_id(record.input_id)
    if id_problem:
        return Verdict(None, id_problem, "unsafe_id")
    if earlier_index is not None:
        return Verdict(None, f"duplicate id {record.input_id} (first at record {earlier_index})", "duplicate_id")
    cleaned = clean_sequence(record.sequence, rules.nonstandard_residues)
    if cleaned.sequence is None:
        return Verdict(None, cleaned.reason, cleaned.code)
    sequence = cleaned.sequence
    digest, length = sequence_hash(sequence), len(sequence)
    if length < rules.min_length:
        return Verdict(None, f"length {length} < min_length {rules.min_length}", "too_short", digest, length)
    if rules.max_length is not None and length > rules.max_length:
        return Verdict(None, f"length {length} > max_length {rules.max_length}", "too_long", digest, length)
    if length > ESM2_WINDOW and rules.long_policy == "skip":
        return Verdict(None, f"length {length} > {ESM2_WINDOW}, the model's window (model.long_policy: skip)",
                       "too_long", digest, length)
    notes = [f"bytes that are not UTF-8 in the {name}, shown as U+FFFD" for name in TEXT_FIELDS
             if "\ufffd" in getattr(record, name)]
    counted = ["invalid_utf8_text"] if notes else []
    if length > ESM2_WINDOW and rules.long_policy == "truncate":
        notes.append(f"truncated from {length} to {ESM2_WINDOW} residues (model.long_policy: truncate)")
        counted.append("truncated")
        sequence = sequence[:ESM2_WINDOW]
        digest, length = sequence_hash(sequence), ESM2_WINDOW
    return Verdict(sequence, "", "", digest, length, tuple(notes), tuple(counted))


def judge_records(records: Iterable[InputRecord], rules: RecordRules) -> Iterator[tuple[InputRecord, Verdict]]:
    """Every record with its verdict, ids tracked in memory (for inputs that fit in it; `prepare`
    keeps them in an on-disk index instead). The first record of an id wins, as in `prepare`."""
    first_index: dict[str, int] = {}
    for record in records:
        earlier = first_index.get(record.input_id)
        if earlier is None:
            first_index[record.input_id] = record.record_index
        yield record, judge(record, rules, earlier)
