"""The ``input:`` config section: light to import, so the workflow checks it when it starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from structure_tokens.inputs.readers import check_source, open_source
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import NONSTANDARD_POLICIES, RecordRules
from structure_tokens.options import FromConfig


@dataclass(frozen=True)
class InputOptions(FromConfig):
    """The ``input:`` config section: where the proteins come from and which of them are kept."""

    source: str = "demo"
    path: str | None = None
    proteinlmbench: Mapping[str, Any] | None = None
    num_proteins: int | None = None
    min_length: int = 1
    max_length: int | None = None
    nonstandard_residues: str = "map"
    shard_size: int = 1000

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"input.shard_size must be >= 1, got {self.shard_size}")
        if self.nonstandard_residues not in NONSTANDARD_POLICIES:
            raise ValueError(f"input.nonstandard_residues must be one of {NONSTANDARD_POLICIES}, "
                             f"got {self.nonstandard_residues!r}")
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(f"input.max_length ({self.max_length}) is below input.min_length ({self.min_length})")
        check_source(self.source, self.path, self.proteinlmbench)

    def rules(self, long_policy: str = "windows") -> RecordRules:
        """The per-record rules of this section, with ``model.long_policy``."""
        return RecordRules(self.nonstandard_residues, self.min_length, self.max_length, long_policy)

    def records(self) -> Iterable[InputRecord]:
        """The records of the configured source."""
        return open_source(self.source, self.path, self.proteinlmbench)
