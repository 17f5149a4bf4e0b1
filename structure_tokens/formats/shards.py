"""Shard tables: the proteins of one embedding job, as a TSV (see docs/DESIGN.md)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from structure_tokens.formats.atomic import atomic_output

SHARD_COLUMNS = ("id", "sequence_hash", "length", "sequence", "aliases", "description", "function", "instruction")
ALIAS_SEPARATOR = ";"


@dataclass(frozen=True)
class Protein:
    """One unique, validated protein; ``aliases`` are the other input ids with the same sequence."""

    id: str
    sequence: str
    sequence_hash: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    function: str = ""
    instruction: str = ""

    @property
    def length(self) -> int:
        return len(self.sequence)


def shard_name(index: int) -> str:
    """``shard_00000`` for index 0."""
    return f"shard_{index:05d}"


def write_shard(path: str | os.PathLike, proteins: Iterable[Protein]) -> int:
    """Write a shard TSV atomically; return the number of proteins written."""
    count = 0
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(SHARD_COLUMNS)
        for protein in proteins:
            writer.writerow([protein.id, protein.sequence_hash, protein.length, protein.sequence,
                             ALIAS_SEPARATOR.join(protein.aliases), protein.description, protein.function,
                             protein.instruction])
            count += 1
    return count


def iter_shard(path: str | os.PathLike) -> Iterator[Protein]:
    """Stream the proteins of a shard TSV, checking its header and each row's length column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = tuple(next(reader, ()))
        if header != SHARD_COLUMNS:
            raise ValueError(f"{path}: not a shard table (header {header!r}, expected {SHARD_COLUMNS!r})")
        for row_number, row in enumerate(reader, start=2):
            if len(row) != len(SHARD_COLUMNS):
                raise ValueError(f"{path}: row {row_number} has {len(row)} columns, expected {len(SHARD_COLUMNS)}")
            protein_id, sequence_hash, length, sequence, aliases, description, function, instruction = row
            if int(length) != len(sequence):
                raise ValueError(f"{path}: row {row_number} ({protein_id}) says length {length} "
                                 f"but its sequence has {len(sequence)} residues")
            yield Protein(protein_id, sequence, sequence_hash,
                          tuple(a for a in aliases.split(ALIAS_SEPARATOR) if a), description, function, instruction)


def read_shard(path: str | os.PathLike) -> list[Protein]:
    """All proteins of a shard TSV, in input order."""
    return list(iter_shard(path))
