"""Per-residue structural labels computed from a chain's coordinates.

Every array returned by :func:`compute_labels` has one value per residue of
``chain.sequence`` (float64, NaN where undefined). Categorical labels are stored as
integer codes into the name tuples below:

- ``ss``: 3-state secondary structure (:data:`SS_STATES`). With ``mkdssp`` on PATH it is
  DSSP's assignment reduced as H,G,I -> H; E,B -> E; everything else -> C. Otherwise it is
  the backbone-dihedral rule of :func:`secondary_structure_from_dihedrals`.
- ``ramachandran``: region of (phi, psi), see :func:`ramachandran_regions`.
- ``rsa_class``: buried (RSA < 0.2), intermediate (0.2 <= RSA < 0.5), exposed (RSA >= 0.5).
- ``contact_class``: local contact density bins, see :data:`CONTACT_BIN_EDGES`.
- ``3di``: Foldseek's 3Di state (:data:`~structure_tokens.evaluation.three_di.THREE_DI_STATES`),
  NaN where it is undefined; see :mod:`structure_tokens.evaluation.three_di`.

Continuous labels: ``phi``, ``psi``, ``omega`` (degrees, IUPAC: omega_i is the peptide bond
CA_i-C_i-N_i+1-CA_i+1), ``rsa`` (Shrake-Rupley SASA / theoretical max ASA of Tien et al. 2013),
``contact_density`` (other CA atoms within 10 Å of the residue's CA).
SASA and contacts are computed on the isolated chain (heavy atoms of its kept residues; no
other chains, ligands or waters), so interface residues count as exposed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from Bio.Data.PDBData import protein_letters_1to3, residue_sasa_scales
from Bio.PDB import PDBIO
from Bio.PDB.Chain import Chain as BioChain
from Bio.PDB.DSSP import dssp_dict_from_pdb_file
from Bio.PDB.Model import Model
from Bio.PDB.SASA import ShrakeRupley
from Bio.PDB.Structure import Structure
from sklearn.neighbors import KDTree

from structure_tokens.evaluation.options import SS_METHODS
from structure_tokens.evaluation.structures import Chain
from structure_tokens.evaluation.three_di import THREE_DI_STATES, three_di_states

SS_STATES = ("H", "E", "C")
RAMACHANDRAN_REGIONS = ("alphaR", "beta", "ppII", "alphaL", "other_positive_phi")
RSA_CLASSES = ("buried", "intermediate", "exposed")
RSA_BIN_EDGES = (0.2, 0.5)
CONTACT_RADIUS = 10.0  # Å, CA-CA
CONTACT_BIN_EDGES = (12.0, 16.0, 20.0)  # CA neighbours: <12, 12-15, 16-19, >=20 (about quartiles)
CONTACT_CLASSES = ("lt12", "12_to_15", "16_to_19", "ge20")
CATEGORICAL_LABELS = {
    "ss": SS_STATES,
    "ramachandran": RAMACHANDRAN_REGIONS,
    "rsa_class": RSA_CLASSES,
    "contact_class": CONTACT_CLASSES,
    "3di": THREE_DI_STATES,
}
MAX_PEPTIDE_BOND = 2.0  # Å; a longer C-N distance is a chain break (dihedrals across it are undefined)
MIN_HELIX_RUN = 4
MIN_STRAND_RUN = 3
MAX_ASA = residue_sasa_scales["Wilke"]  # Tien et al. 2013, theoretical
# mkdssp 4 only accepts a PDB file that starts with HEADER and has a CRYST1 record.
DSSP_PDB_HEADER = (
    f"{'HEADER    PROTEIN':<50}01-JAN-00   XXXX              \n"
    "CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1          \n"
)
DSSP_TO_3STATE = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E"}


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Dihedral angles in degrees (-180, 180] of row-wise point quadruples, shape (m, 3) each."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - np.sum(b0 * b1, axis=1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=1, keepdims=True) * b1
    x = np.sum(v * w, axis=1)
    y = np.sum(np.cross(b1, v) * w, axis=1)
    return np.degrees(np.arctan2(y, x))


def backbone_dihedrals(backbone: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi, psi, omega (degrees) per residue from N/CA/C coordinates (n, 3, 3); NaN at ends and breaks."""
    n = len(backbone)
    phi, psi, omega = (np.full(n, np.nan) for _ in range(3))
    if n < 2:
        return phi, psi, omega
    N, CA, C = backbone[:, 0], backbone[:, 1], backbone[:, 2]
    linked = np.linalg.norm(N[1:] - C[:-1], axis=1) <= MAX_PEPTIDE_BOND  # bond between i and i+1
    phi[1:] = np.where(linked, dihedral(C[:-1], N[1:], CA[1:], C[1:]), np.nan)
    psi[:-1] = np.where(linked, dihedral(N[:-1], CA[:-1], C[:-1], N[1:]), np.nan)
    omega[:-1] = np.where(linked, dihedral(CA[:-1], C[:-1], N[1:], CA[1:]), np.nan)
    return phi, psi, omega


def _runs_at_least(mask: np.ndarray, min_run: int) -> np.ndarray:
    """``mask`` with True runs shorter than ``min_run`` set to False."""
    kept = np.zeros_like(mask)
    start = None
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_run:
                kept[start:i] = True
            start = None
    return kept


def secondary_structure_from_dihedrals(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """3-state codes (0=H, 1=E, 2=C; NaN where phi or psi is undefined) from backbone dihedrals.

    A residue is helical if -160 <= phi <= -20 and -120 <= psi <= 50, extended if
    -180 <= phi <= -80 and (psi >= 90 or psi <= -150). H needs a run of >= 4 consecutive
    helical residues, E a run of >= 3 extended ones; the rest is C. This is a conformational
    approximation of DSSP (no hydrogen bonds): isolated extended segments count as E.
    """
    with np.errstate(invalid="ignore"):
        helical = (phi >= -160) & (phi <= -20) & (psi >= -120) & (psi <= 50)
        extended = (phi <= -80) & ((psi >= 90) | (psi <= -150))
    codes = np.full(len(phi), 2.0)
    codes[_runs_at_least(extended, MIN_STRAND_RUN)] = 1.0
    codes[_runs_at_least(helical, MIN_HELIX_RUN)] = 0.0
    codes[np.isnan(phi) | np.isnan(psi)] = np.nan
    return codes


def ramachandran_regions(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Region codes into :data:`RAMACHANDRAN_REGIONS` (NaN where phi or psi is undefined).

    phi < 0: alphaR if -120 <= psi < 50; otherwise beta if phi < -100, else ppII.
    phi >= 0: alphaL if -50 <= psi < 100, else other_positive_phi (mostly glycine).
    """
    with np.errstate(invalid="ignore"):
        alpha_psi = (psi >= -120) & (psi < 50)
        codes = np.select(
            [
                (phi < 0) & alpha_psi,
                (phi < -100) & ~alpha_psi,
                (phi < 0) & ~alpha_psi,
                (phi >= 0) & (psi >= -50) & (psi < 100),
            ],
            [0.0, 1.0, 2.0, 3.0],
            default=4.0,
        )
    codes[np.isnan(phi) | np.isnan(psi)] = np.nan
    return codes


def bin_codes(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Index of the half-open bin [edge_i, edge_i+1) of each value; NaN stays NaN."""
    codes = np.digitize(values, edges).astype(np.float64)
    codes[np.isnan(values)] = np.nan
    return codes


def contact_density(backbone: np.ndarray, radius: float = CONTACT_RADIUS) -> np.ndarray:
    """Number of other CA atoms within ``radius`` Å of each residue's CA."""
    counts = KDTree(backbone[:, 1]).query_radius(backbone[:, 1], r=radius, count_only=True)
    return counts.astype(np.float64) - 1.0


def _bio_chain(chain: Chain) -> BioChain:
    """A fresh Biopython chain "A" of copies of the chain's heavy-atom residues, each renamed to
    its standard amino acid (e.g. MSE -> MET, which mkdssp would otherwise leave out)."""
    entity = BioChain("A")
    for residue, letter in zip(chain.residues, chain.sequence):
        copy = residue.copy()
        copy.resname = protein_letters_1to3[letter].upper()
        entity.add(copy)
    return entity


def relative_solvent_accessibility(chain: Chain) -> np.ndarray:
    """Shrake-Rupley residue SASA of the isolated chain divided by the Tien et al. 2013 max ASA."""
    entity = _bio_chain(chain)
    ShrakeRupley().compute(entity, level="R")
    max_asa = np.array([MAX_ASA[protein_letters_1to3[aa].upper()] for aa in chain.sequence])
    return np.array([residue.sasa for residue in entity], dtype=np.float64) / max_asa


def dssp_available() -> bool:
    """True when the ``mkdssp`` executable is on PATH."""
    return shutil.which("mkdssp") is not None


def secondary_structure_method() -> str:
    """``"dssp"`` when mkdssp is on PATH, else ``"phi_psi"`` (see the module docstring)."""
    return "dssp" if dssp_available() else "phi_psi"


def secondary_structure_dssp(chain: Chain) -> np.ndarray:
    """3-state codes from mkdssp run on the isolated chain (written as a temporary PDB file)."""
    version_text = subprocess.run(["mkdssp", "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+\.\d+(?:\.\d+)?)", version_text)
    if found is None:
        raise RuntimeError(f"cannot read the mkdssp version from {version_text!r}")
    structure, model = Structure(chain.chain_id), Model(0)
    structure.add(model)
    model.add(_bio_chain(chain))
    with tempfile.TemporaryDirectory() as folder:
        pdb_path = Path(folder) / "chain.pdb"
        io = PDBIO()
        io.set_structure(structure)
        io.save(str(pdb_path))
        pdb_path.write_text(DSSP_PDB_HEADER + pdb_path.read_text())
        with warnings.catch_warnings():  # mkdssp's complaints about the minimal file it was given
            warnings.simplefilter("ignore", UserWarning)
            try:
                dssp, _ = dssp_dict_from_pdb_file(str(pdb_path), "mkdssp", found.group(1))
            except Exception as error:  # Biopython raises a bare Exception when mkdssp writes nothing
                raise RuntimeError(f"{chain.source}: mkdssp failed on chain {chain.chain_id}: {error}") from error
    codes = np.full(len(chain), np.nan)
    for i, residue in enumerate(chain.residues):
        entry = dssp.get(("A", residue.id))
        if entry is not None:
            codes[i] = SS_STATES.index(DSSP_TO_3STATE.get(entry[1], "C"))
    return codes


def compute_labels(chain: Chain, ss_method: str = "auto") -> dict[str, np.ndarray]:
    """All labels of the module docstring for ``chain``; ``ss_method`` is auto, dssp or phi_psi."""
    if ss_method not in SS_METHODS:
        raise ValueError(f"ss_method must be auto, dssp or phi_psi, not {ss_method!r}")
    if ss_method == "auto":
        ss_method = secondary_structure_method()
    phi, psi, omega = backbone_dihedrals(chain.backbone)
    rsa = relative_solvent_accessibility(chain)
    contacts = contact_density(chain.backbone)
    ss = secondary_structure_dssp(chain) if ss_method == "dssp" else secondary_structure_from_dihedrals(phi, psi)
    return {
        "phi": phi,
        "psi": psi,
        "omega": omega,
        "ss": ss,
        "ramachandran": ramachandran_regions(phi, psi),
        "rsa": rsa,
        "rsa_class": bin_codes(rsa, RSA_BIN_EDGES),
        "contact_density": contacts,
        "contact_class": bin_codes(contacts, CONTACT_BIN_EDGES),
        "3di": three_di_states(chain),
    }
