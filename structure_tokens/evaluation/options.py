"""The ``evaluation:`` config section: light to import, so the workflow checks it when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from structure_tokens.options import FromConfig

SS_METHODS = ("auto", "dssp", "phi_psi")  # how secondary structure is assigned


@dataclass(frozen=True)
class EvaluationOptions(FromConfig):
    """The ``evaluation:`` config section."""

    structures: str | None = None  # folder of PDB/mmCIF files; None: no structure evaluation
    seed_stability: bool = True  # held-out metrics: refit the codebook with seed + 1
    min_chain_length: int = 20
    track_chains: int = 4
    secondary_structure: str = "auto"

    def __post_init__(self) -> None:
        if self.secondary_structure not in SS_METHODS:
            raise ValueError(f"evaluation.secondary_structure must be one of {SS_METHODS}, "
                             f"got {self.secondary_structure!r}")
