"""The ``report:`` config section: light to import, so the workflow checks it when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from structure_tokens.options import FromConfig


@dataclass(frozen=True)
class ReportOptions(FromConfig):
    """The ``report:`` config section."""

    pca_residues: int = 5000  # residues drawn for the PCA figure
