"""Structure reading and per-residue labels: real PDB/mmCIF files and ideal helix/strand backbones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from structure_tokens.evaluation.labels import (
    RAMACHANDRAN_REGIONS,
    SS_STATES,
    backbone_dihedrals,
    compute_labels,
    dssp_available,
    ramachandran_regions,
    secondary_structure_dssp,
    secondary_structure_from_dihedrals,
)
from structure_tokens.evaluation.structures import Chain, StructureError, load_chains, read_structure
from structure_tokens.evaluation.three_di import (
    THREE_DI_STATES,
    UNDEFINED_TOKEN,
    three_di_states,
    three_di_string,
    three_di_tokens,
)

from conftest import REAL_DATA

STRUCTURES = REAL_DATA / "structures"
HEMOGLOBIN = STRUCTURES / "2hhb.ent.gz"
SELENOMET = STRUCTURES / "1A8O.cif.gz"  # has MSE residues
SMALL_PDB_GZ = STRUCTURES / "7DDO.pdb.gz"
SELENOMET_SEQUENCE = "MDIRQGPKEPFRDYVDRFYKTLRAEQASQEVKNWMTETLLVQNANPDCKTILKALGPGATLEEMMTACQG"
HEMOGLOBIN_ALPHA_START = "VLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF"


def ideal_backbone(phi: float, psi: float, n: int, omega: float = 180.0) -> np.ndarray:
    """N/CA/C coordinates (n, 3, 3) of a chain with constant dihedrals and ideal bond geometry."""

    def place(a, b, c, length, angle, torsion):
        bc = (c - b) / np.linalg.norm(c - b)
        normal = np.cross(b - a, bc)
        normal /= np.linalg.norm(normal)
        angle, torsion = np.radians(angle), np.radians(torsion)
        local = np.array(
            [
                -length * np.cos(angle),
                length * np.sin(angle) * np.cos(torsion),
                length * np.sin(angle) * np.sin(torsion),
            ]
        )
        return c + local[0] * bc + local[1] * np.cross(normal, bc) + local[2] * normal

    atoms = [np.array([0.0, 1.458, 0.0]), np.zeros(3), np.array([1.525, 0.0, 0.0])]
    for _ in range(n - 1):
        atoms.append(place(atoms[-3], atoms[-2], atoms[-1], 1.329, 116.2, psi))  # N(i+1)
        atoms.append(place(atoms[-3], atoms[-2], atoms[-1], 1.458, 121.7, omega))  # CA(i+1)
        atoms.append(place(atoms[-3], atoms[-2], atoms[-1], 1.525, 111.2, phi))  # C(i+1)
    return np.array(atoms).reshape(n, 3, 3)


@pytest.mark.parametrize(("phi", "psi", "state", "region"), [(-57, -47, "H", "alphaR"), (-120, 130, "E", "beta")])
def test_ideal_backbone_dihedrals_and_secondary_structure(phi, psi, state, region):
    backbone = ideal_backbone(phi, psi, n=12)
    phis, psis, omegas = backbone_dihedrals(backbone)
    assert np.isnan(phis[0]) and np.isnan(psis[-1]) and np.isnan(omegas[-1])
    np.testing.assert_allclose(phis[1:], phi, atol=1e-6)
    np.testing.assert_allclose(psis[:-1], psi, atol=1e-6)
    np.testing.assert_allclose(np.abs(omegas[:-1]), 180.0, atol=1e-6)

    ss = secondary_structure_from_dihedrals(phis, psis)
    assert np.isnan(ss[0]) and np.isnan(ss[-1])
    assert set(ss[1:-1]) == {SS_STATES.index(state)}
    assert set(ramachandran_regions(phis, psis)[1:-1]) == {RAMACHANDRAN_REGIONS.index(region)}


def test_short_helical_runs_are_coil_and_chain_breaks_are_undefined():
    phi = np.array([np.nan, -60, -60, -60, -120, -60, -60, -60, -60, -60])
    psi = np.array([-45, -45, -45, 130, 130, -45, -45, -45, -45, np.nan])
    ss = secondary_structure_from_dihedrals(phi, psi)
    np.testing.assert_array_equal(ss[1:4], [2, 2, 2])  # a 2-residue helical run is too short
    np.testing.assert_array_equal(ss[5:9], [0, 0, 0, 0])

    backbone = ideal_backbone(-57, -47, n=10)
    backbone[5:] += np.array([10.0, 0.0, 0.0])  # C(4)-N(5) is now far apart: a break
    phis, psis, omegas = backbone_dihedrals(backbone)
    assert np.isnan(psis[4]) and np.isnan(omegas[4]) and np.isnan(phis[5])
    assert not np.isnan(phis[4]) and not np.isnan(psis[5])


def test_reads_pdb_mmcif_and_gzip_with_sequences_and_chain_ids(tmp_path):
    for source in (HEMOGLOBIN, SELENOMET, SMALL_PDB_GZ):
        shutil.copy(source, tmp_path / source.name)
    (tmp_path / "notes.txt").write_text("not a structure\n")

    chains, skipped = load_chains(tmp_path)
    by_id = {chain.chain_id: chain for chain in chains}
    assert {"2hhb_A", "2hhb_B", "2hhb_C", "2hhb_D", "1A8O_A"} <= by_id.keys()
    assert any(chain_id.startswith("7DDO_") for chain_id in by_id)
    alpha = by_id["2hhb_A"]
    assert alpha.sequence.startswith(HEMOGLOBIN_ALPHA_START) and len(alpha) == 141
    assert alpha.source == tmp_path / "2hhb.ent.gz"
    # the four selenomethionines (MSE) are mapped to M, not dropped
    assert by_id["1A8O_A"].sequence == SELENOMET_SEQUENCE
    for chain in chains:
        assert chain.backbone.shape == (len(chain), 3, 3) and len(chain.residues) == len(chain) >= 20
        assert all(atom.element != "H" for residue in chain.residues for atom in residue)
    assert skipped == [f"{tmp_path / 'notes.txt'}: ignored, not a .pdb/.ent/.cif/.mmcif(.gz) file name"]


def test_unparsable_file_is_named_or_skipped_with_reason(tmp_path):
    shutil.copy(HEMOGLOBIN, tmp_path / HEMOGLOBIN.name)
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\nloop_\n_atom_site.id\n_atom_site.type_symbol\n1\n")
    with pytest.raises(StructureError, match="broken.cif"):
        load_chains(tmp_path)
    chains, skipped = load_chains(tmp_path, skip_unparsable=True)
    assert len(chains) == 4
    assert len(skipped) == 1 and skipped[0].startswith(f"{broken}: cannot parse as mmcif")


def test_short_chains_are_skipped_with_reason():
    chains, skipped = read_structure(HEMOGLOBIN, min_length=142)
    assert [chain.chain_id for chain in chains] == ["2hhb_B", "2hhb_D"]  # beta chains: 146 residues
    assert len(skipped) == 2 and all("(< 142)" in reason for reason in skipped)


def test_labels_align_with_sequence_on_real_chain():
    alpha = read_structure(HEMOGLOBIN)[0][0]
    labels = compute_labels(alpha, ss_method="phi_psi")
    assert {len(values) for values in labels.values()} == {len(alpha)}
    ss = labels["ss"][~np.isnan(labels["ss"])]
    assert np.mean(ss == SS_STATES.index("H")) > 0.6  # hemoglobin alpha is an all-helical globin
    rsa = labels["rsa"]
    assert np.all(rsa >= 0) and np.nanmax(rsa) < 1.6
    assert 0.2 < np.mean(rsa < 0.2) < 0.7  # both buried and exposed residues occur
    assert labels["contact_density"].min() >= 1 and labels["contact_density"].max() < 40
    assert np.nanmedian(np.abs(labels["omega"])) > 170  # trans peptide bonds
    for name in ("ss", "ramachandran", "rsa_class", "contact_class"):
        defined = labels[name][~np.isnan(labels[name])]
        assert np.all(defined == np.round(defined)) and defined.min() >= 0


@pytest.mark.skipif(not dssp_available(), reason="mkdssp is not on PATH")
def test_dssp_agrees_with_dihedral_rule_and_covers_selenomethionine():
    alpha = read_structure(HEMOGLOBIN)[0][0]
    dssp = secondary_structure_dssp(alpha)
    rule = compute_labels(alpha, ss_method="phi_psi")["ss"]
    both = ~np.isnan(dssp) & ~np.isnan(rule)
    assert both.sum() > 130
    assert np.mean(dssp[both] == rule[both]) > 0.8
    assert not np.isnan(secondary_structure_dssp(read_structure(SELENOMET)[0][0])).any()


def test_three_di_of_an_ideal_helix_is_one_repeated_state():
    """Foldseek's 3Di (mini3di, Foldseek's weights) of a straight alpha-helix is state V throughout; the first
    and last residue have no neighbours on one side and are undefined."""
    helix = Chain("helix", Path("ideal"), "A" * 40, ideal_backbone(-57, -47, 40), (), 0, 0)
    states = three_di_states(helix)
    assert np.isnan(states[0]) and np.isnan(states[-1])
    assert three_di_string(states) == "-" + "V" * 38 + "-"
    assert three_di_tokens([states])[0].tolist() == [UNDEFINED_TOKEN] + [THREE_DI_STATES.index("V")] * 38 + [
        UNDEFINED_TOKEN]


def test_three_di_of_a_real_chain_uses_its_cb_atoms():
    alpha = read_structure(HEMOGLOBIN)[0][0]
    with_cb = three_di_states(alpha)
    backbone_only = three_di_states(Chain(alpha.chain_id, alpha.source, alpha.sequence, alpha.backbone, (), 0, 0))
    assert np.isnan(with_cb).sum() <= 2 and set(three_di_string(with_cb)) <= set(THREE_DI_STATES) | {"-"}
    assert 0 < np.sum(with_cb != backbone_only) < 0.2 * len(alpha)  # placed CB atoms change a few states
