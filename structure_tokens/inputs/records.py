"""One record as read from an input file, before validation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputRecord:
    """``record_index`` is 0-based within ``source``; ``sequence`` is None when the record has none."""

    source: str
    record_index: int
    input_id: str
    sequence: str | None
    description: str = ""
    function: str = ""
    instruction: str = ""
