"""``prepared/manifest.tsv``: one row per input record, saying what became of it (docs/DESIGN.md)."""

from __future__ import annotations

import csv
from typing import TextIO

MANIFEST_COLUMNS = ("source", "record_index", "input_id", "status", "reason", "protein_id",
                    "sequence_hash", "length", "shard")
STATUSES = ("kept", "duplicate_sequence", "skipped", "not_selected")


class ManifestWriter:
    """Writes the header, then one row per record, to an open text file."""

    def __init__(self, handle: TextIO):
        self._writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        self._writer.writerow(MANIFEST_COLUMNS)

    def write(self, source: str, record_index: int, input_id: str, status: str, reason: str = "",
              protein_id: str = "", sequence_hash: str = "", length: int | str = "", shard: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"manifest status {status!r} is not one of {STATUSES}")
        self._writer.writerow([source, record_index, input_id, status, reason, protein_id, sequence_hash,
                               length, shard])
