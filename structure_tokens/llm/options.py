"""The ``llm:`` and ``finetune:`` config sections: light to import, so the workflow checks them at start."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from structure_tokens.formats.vocab import FORMATS
from structure_tokens.options import FromConfig


@dataclass(frozen=True)
class OutputOptions(FromConfig):
    """The ``llm:`` config section."""

    vocab_offset: int = 0  # id of the first added token, e.g. the size of an existing vocabulary

    def __post_init__(self) -> None:
        if self.vocab_offset < 0:
            raise ValueError(f"llm.vocab_offset must be >= 0, got {self.vocab_offset}")


SPLIT_METHODS = ("sequence", "clusters")
TARGETS = ("function", "description")  # the record text that becomes the completion
DEFAULT_FRACTIONS = {"train": 0.9, "validation": 0.05, "test": 0.05}


@dataclass(frozen=True)
class FinetuneOptions(FromConfig):
    """The ``finetune:`` section of the config."""

    format: str = "interleaved"
    target: str = "function"
    instruction: str = "Describe the function of this protein."
    prompt_template: str = "{instruction}\n{protein}\n"
    split_method: str = "sequence"
    clusters_tsv: str | None = None
    fractions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    seed: int = 0
    rows_per_shard: int = 10000
    jsonl: bool = True

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"finetune.format {self.format!r} is not one of {FORMATS}")
        if self.target not in TARGETS:
            raise ValueError(f"finetune.target {self.target!r} is not one of {TARGETS}")
        if self.split_method not in SPLIT_METHODS:
            raise ValueError(f"finetune.split_method {self.split_method!r} is not one of {SPLIT_METHODS}")
        if self.split_method == "clusters" and not self.clusters_tsv:
            raise ValueError("finetune.split_method 'clusters' needs finetune.clusters_tsv")
        fractions = list(self.fractions.values())
        if not fractions or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
            raise ValueError(f"finetune.fractions {dict(self.fractions)} must be >= 0 and sum to 1")
        if "{protein}" not in self.prompt_template:
            raise ValueError(f"finetune.prompt_template {self.prompt_template!r} lacks {{protein}}")
        if self.rows_per_shard < 1:
            raise ValueError(f"finetune.rows_per_shard must be >= 1, got {self.rows_per_shard}")
