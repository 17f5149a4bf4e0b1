"""Input readers: UniProt protein names, undecodable bytes, ProteinLMBench exports, dispatch, demo provenance."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import re
from importlib import resources

import pytest

from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.prepare import prepare_inputs
from structure_tokens.inputs.readers import open_source, read_fasta, read_proteinlmbench, read_uniprot
from structure_tokens.inputs.readers import protein_name
from structure_tokens.inputs.validate import clean_sequence

from conftest import REAL_DATA, REPO

FIXTURES = REPO / "tests" / "data" / "inputs"
DEMO = resources.files("structure_tokens.data") / "demo_swissprot.dat.gz"
DEMO_TEXT = gzip.decompress(DEMO.read_bytes()).decode()


@pytest.mark.parametrize("description, name", [
    ("RecName: Full=Claudin-1 {ECO:0000305}; AltName: Full=Senescence-associated protein;", "Claudin-1"),
    ("SubName: Full=Predicted protein {ECO:0000313|EMBL:BAJ87517.1};", "Predicted protein"),
    ("Proto-oncogene protein c-fos (Cellular oncogene fos) (G0/G1 switch regulatory protein 7).",
     "Proto-oncogene protein c-fos"),
    ("UBIQUITIN.", "UBIQUITIN"),
    ("RecName: EC=1.1.1.1;", ""),
])
def test_protein_name_of_current_trembl_and_old_de_lines(description, name):
    assert protein_name(description) == name


def test_real_flat_files_give_names_for_every_de_style():
    folder = REAL_DATA / "sequences" / "biopython_tests_swissprot"
    names = {r.input_id: r.description for f in ("F2CXE6.txt", "sp012", "sp016.gz") for r in read_uniprot(folder / f)}
    assert names == {"F2CXE6": "Plasma membrane intrinsic protein", "Q9Y736": "UBIQUITIN",
                     "P01100": "Proto-oncogene protein c-fos"}


def test_undecodable_bytes_reach_validation_instead_of_crashing(tmp_path):
    fasta = tmp_path / "latin1.fasta"
    fasta.write_bytes(b">p1 caf\xe9 protein\nMK\xe9A\n>p2\nMKA\n")
    first, second = read_fasta(fasta)
    assert first.description == "caf\ufffd protein"
    assert clean_sequence(first.sequence).reason == "invalid character '\ufffd' at position 3"
    assert second.sequence == "MKA"


ROWS = [
    {"instruction": "Q?", "input": "<seq> M K V </seq>", "output": "Binds ATP.", "accession": "P1"},
    {"instruction": "Q?", "input": "<seq>MAA</seq>", "output": "Binds GTP.", "accession": 0},
    {"instruction": "Q?", "input": "<seq>MCC</seq>", "output": "Binds CTP.", "accession": ""},
]


@pytest.mark.parametrize("layout", ["array", "json_lines"])
def test_proteinlmbench_json_as_array_or_json_lines(layout, tmp_path):
    """The dataset ships JSON arrays; ``datasets.Dataset.to_json`` writes JSON lines to ``.json``."""
    export = tmp_path / "export.json"
    export.write_text(json.dumps(ROWS, indent=1) if layout == "array" else "".join(json.dumps(r) + "\n" for r in ROWS))
    records = list(read_proteinlmbench(export, split="test"))
    assert [r.input_id for r in records] == ["P1", "0", "plmb_test_0000002"]
    assert [clean_sequence(r.sequence).sequence for r in records] == ["MKV", "MAA", "MCC"]
    assert records[1].function == "Binds GTP." and records[2].instruction == "Q?"


@pytest.mark.parametrize("row, found", [({"question": "x", "answer": "y"}, "['answer', 'question']"),
                                        ("MKV", "str")])
def test_proteinlmbench_rows_of_another_schema_are_an_error(row, found, tmp_path):
    export = tmp_path / "other.jsonl"
    export.write_text(json.dumps(row) + "\n")
    message = rf"other\.jsonl: row 0 is not a ProteinLMBench record .*found {re.escape(found)}"
    with pytest.raises(ValueError, match=message):
        next(read_proteinlmbench(export))


def test_proteinlmbench_invalid_json_line_names_file_and_line(tmp_path):
    export = tmp_path / "broken.jsonl"
    export.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl: line 2: invalid JSON"):
        list(read_proteinlmbench(export))


def test_open_source_dispatches_on_the_configured_source(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKV\n")
    assert [r.input_id for r in open_source("fasta", str(fasta), {})] == ["a"]
    flat_file = tmp_path / "entry.dat"
    flat_file.write_text(DEMO_TEXT.split("//\n")[0] + "//\n")
    assert [r.input_id for r in open_source("uniprot", str(flat_file))] == ["P15455"]
    plmb = open_source("proteinlmbench", str(FIXTURES / "proteinlmbench_sample.jsonl"), {"split": "dev", "subset": "x"})
    assert next(plmb).input_id == "plmb_dev_0000000"
    assert sum(1 for _ in open_source("demo", None, {})) == 100
    with pytest.raises(ValueError, match=r"unknown input.proteinlmbench keys \['revision'\]"):
        open_source("proteinlmbench", None, {"revision": "main"})
    with pytest.raises(ValueError, match="input.source 'uniprot' needs input.path"):
        open_source("uniprot", None, {})


def load_make_demo():
    spec = importlib.util.spec_from_file_location("make_demo", REPO / "tools" / "make_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_file_is_reproduced_by_make_demo(tmp_path):
    derived = tmp_path / "demo.dat.gz"
    assert load_make_demo().derive(REAL_DATA / "sequences" / "emboss_test_swissprot_seq.dat.gz", derived) == 100
    assert derived.read_bytes() == DEMO.read_bytes()
    assert {line[:2] for line in DEMO_TEXT.splitlines()} <= {"ID", "AC", "DE", "GN", "OS", "OX", "CC", "SQ", "  ", "//"}


@pytest.mark.parametrize("reader, text", [(read_fasta, b">p1 kinase\nMKA\n" * 2000),
                                          (read_uniprot, DEMO_TEXT.encode())])
def test_truncated_gzip_input_names_the_file(tmp_path, reader, text):
    path = tmp_path / "input.gz"
    whole = gzip.compress(text)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=rf"{path}: truncated or corrupt gzip file \(Compressed file ended"):
        list(reader(path))


def test_bytes_that_are_not_utf8_are_reported_in_the_manifest(tmp_path):
    fasta = tmp_path / "latin1.fasta"
    fasta.write_bytes(b">p1 caf\xe9 protein\nMKAW\n>p\xe92 kinase\nMKAV\n>p3 kinase\nMKAL\n")
    out = tmp_path / "prepared"
    summary = prepare_inputs(read_fasta(fasta), InputOptions(), shards_dir=out / "shards",
                             manifest_path=out / "manifest.tsv", summary_path=out / "summary.json")
    manifest = {row["input_id"]: row for row in csv.DictReader(open(out / "manifest.tsv"), delimiter="\t")}
    assert manifest["p1"]["status"] == "kept"
    assert manifest["p1"]["reason"] == "bytes that are not UTF-8 in the description, shown as U+FFFD"
    assert manifest["p\ufffd2"]["status"] == "skipped"
    assert manifest["p\ufffd2"]["reason"] == "id 'p\ufffd2' has bytes that are not UTF-8"
    assert summary["reason_counts"] == {"invalid_utf8": 1, "invalid_utf8_text": 1}
    assert summary["n_proteins"] == 2


BOM = "\ufeff".encode()


@pytest.mark.parametrize("name, text, reader, first_id", [
    ("in.fasta", ">p1 kinase\nMKV\n", read_fasta, "p1"),
    ("in.fasta.gz", ">p1 kinase\nMKV\n", read_fasta, "p1"),
    ("entry.dat", DEMO_TEXT.split("//\n")[0] + "//\n", read_uniprot, "P15455"),
    ("export.jsonl", json.dumps(ROWS[0]) + "\n", read_proteinlmbench, "P1"),
    ("export.json", json.dumps(ROWS), read_proteinlmbench, "P1"),
])
def test_a_leading_byte_order_mark_is_accepted(name, text, reader, first_id, tmp_path):
    """Editors on Windows often start UTF-8 files with a BOM (EF BB BF)."""
    path = tmp_path / name
    data = BOM + text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert list(reader(path))[0].input_id == first_id
