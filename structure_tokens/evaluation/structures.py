"""Read protein chains (sequence + heavy-atom coordinates) from PDB/mmCIF files with Biopython."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from Bio.Data.PDBData import protein_letters_3to1_extended
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.Residue import Residue

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PDB_SUFFIXES = (".pdb", ".ent")
MMCIF_SUFFIXES = (".cif", ".mmcif")
BACKBONE_ATOMS = ("N", "CA", "C")
HYDROGEN_ELEMENTS = {"H", "D"}


class StructureError(ValueError):
    """A structure file could not be read; the message names the file."""


@dataclass(frozen=True)
class Chain:
    """One protein chain of the first model, restricted to residues usable for evaluation.

    ``sequence[i]`` and ``backbone[i]`` (N, CA, C coordinates, Å) describe the same residue;
    ``residues[i]`` is a detached Biopython copy of it holding its heavy atoms only (for SASA).
    """

    chain_id: str  # "<file stem>_<chain letter>"
    source: Path
    sequence: str
    backbone: np.ndarray  # float64 (n, 3, 3): atoms N, CA, C
    residues: tuple[Residue, ...] = field(repr=False)
    n_skipped_nonstandard: int  # residues with a backbone but no standard one-letter code
    n_skipped_incomplete: int  # amino-acid residues lacking N, CA or C

    def __len__(self) -> int:
        return len(self.sequence)


def structure_stem(path: Path) -> tuple[str, str] | None:
    """``("1abc", "pdb"|"mmcif")`` for a supported structure file name (optionally ``.gz``), else None."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffixes, fmt in ((PDB_SUFFIXES, "pdb"), (MMCIF_SUFFIXES, "mmcif")):
        for suffix in suffixes:
            if name.endswith(suffix):
                return path.name[: len(name) - len(suffix)], fmt
    return None


def _parse_first_model(path: Path, fmt: str):
    parser = PDBParser(QUIET=True) if fmt == "pdb" else MMCIFParser(QUIET=True)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            structure = parser.get_structure(path.name, handle)
    except Exception as error:  # Biopython raises many types (ValueError, KeyError, PDBConstructionException)
        raise StructureError(f"{path}: cannot parse as {fmt}: {type(error).__name__}: {error}") from error
    if len(structure) == 0:
        raise StructureError(f"{path}: no model with atoms")
    return next(iter(structure))


def _heavy_atom_copy(residue: Residue) -> Residue:
    """A detached copy of ``residue`` without hydrogen/deuterium atoms."""
    copy = residue.copy()
    copy.detach_parent()
    for atom in list(copy):
        if (atom.element or "").upper() in HYDROGEN_ELEMENTS:
            copy.detach_child(atom.get_id())
    return copy


def _read_chain(bio_chain, chain_id: str, source: Path) -> Chain:
    letters: list[str] = []
    backbone: list[np.ndarray] = []
    residues: list[Residue] = []
    n_nonstandard = n_incomplete = 0
    for residue in bio_chain:
        has_backbone = all(name in residue for name in BACKBONE_ATOMS)
        letter = protein_letters_3to1_extended.get(residue.get_resname().strip().upper())
        if letter is None or letter not in STANDARD_AMINO_ACIDS:
            n_nonstandard += has_backbone
            continue
        if not has_backbone:
            n_incomplete += 1
            continue
        letters.append(letter)
        backbone.append(np.array([residue[name].coord for name in BACKBONE_ATOMS], dtype=np.float64))
        residues.append(_heavy_atom_copy(residue))
    return Chain(
        chain_id=chain_id,
        source=source,
        sequence="".join(letters),
        backbone=np.array(backbone, dtype=np.float64).reshape(-1, 3, 3),
        residues=tuple(residues),
        n_skipped_nonstandard=n_nonstandard,
        n_skipped_incomplete=n_incomplete,
    )


def read_structure(path: str | os.PathLike, min_length: int = 20) -> tuple[list[Chain], list[str]]:
    """Chains of the first model of one file with at least ``min_length`` residues, and skip reasons.

    A residue is kept when its name maps (``protein_letters_3to1_extended``, e.g. MSE -> M) to
    one of the 20 standard amino acids and it has N, CA and C atoms; other residues with a
    backbone are counted in ``n_skipped_nonstandard``, amino acids without one in
    ``n_skipped_incomplete``; waters and ligands are ignored. Raises StructureError naming the file.
    """
    path = Path(path)
    kind = structure_stem(path)
    if kind is None:
        raise StructureError(f"{path}: not a .pdb/.ent/.cif/.mmcif(.gz) file")
    stem, fmt = kind
    chains: list[Chain] = []
    skipped: list[str] = []
    for bio_chain in _parse_first_model(path, fmt):
        chain = _read_chain(bio_chain, f"{stem}_{bio_chain.id}", path)
        if len(chain) >= min_length:
            chains.append(chain)
        elif len(chain) > 0:
            skipped.append(f"{path}: chain {bio_chain.id} has {len(chain)} usable residues (< {min_length})")
    if not chains:
        skipped.append(f"{path}: no protein chain with >= {min_length} usable residues")
    return chains, skipped


def load_chains(
    folder: str | os.PathLike, min_length: int = 20, *, skip_unparsable: bool = False
) -> tuple[list[Chain], list[str]]:
    """All chains of the structure files under ``folder`` (recursively) and why anything was skipped.

    Files whose names are not .pdb/.ent/.cif/.mmcif (optionally .gz) are listed as skipped.
    Files that fail to parse raise StructureError (naming the file) unless ``skip_unparsable``,
    in which case the error message is added to the skip reasons. Chain ids must be unique.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"structure folder {folder} does not exist")
    chains: list[Chain] = []
    skipped: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if structure_stem(path) is None:
            skipped.append(f"{path}: ignored, not a .pdb/.ent/.cif/.mmcif(.gz) file name")
            continue
        try:
            file_chains, file_skipped = read_structure(path, min_length)
        except StructureError as error:
            if not skip_unparsable:
                raise
            file_chains, file_skipped = [], [str(error)]
        chains.extend(file_chains)
        skipped.extend(file_skipped)
    seen: dict[str, Path] = {}
    for chain in chains:
        if chain.chain_id in seen:
            raise StructureError(
                f"chain id {chain.chain_id} occurs in both {seen[chain.chain_id]} and {chain.source}; rename one file"
            )
        seen[chain.chain_id] = chain.source
    return chains, skipped
