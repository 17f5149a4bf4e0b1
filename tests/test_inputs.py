"""Input stage: readers, the validation policy, de-duplication, manifest and shards."""

from __future__ import annotations

import gzip
import itertools
import json

import pandas as pd
import pytest

from structure_tokens.formats.shards import read_shard
from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.prepare import prepare_inputs
from structure_tokens.inputs.readers import open_source, read_demo, read_fasta, read_proteinlmbench, read_uniprot
from structure_tokens.inputs.validate import sequence_hash
from structure_tokens.inputs.validate import check_id, clean_sequence

from conftest import REAL_DATA, REPO

FIXTURES = REPO / "tests" / "data" / "inputs"


def run_prepare(records, tmp_path, long_policy="windows", **options):
    options.setdefault("shard_size", 2)
    summary = prepare_inputs(records, InputOptions(**options), long_policy=long_policy, shards_dir=tmp_path / "shards",
                             manifest_path=tmp_path / "manifest.tsv", summary_path=tmp_path / "summary.json")
    manifest = pd.read_csv(tmp_path / "manifest.tsv", sep="\t", keep_default_na=False, dtype=str)
    return summary, manifest.set_index("input_id", drop=False)


@pytest.mark.parametrize("raw, policy, expected, reason", [
    ("mk ta\nY*", "map", "MKTAY", ""),
    ("MKUOBZJ", "map", "MKCKDEL", ""),
    ("MKU", "reject", None, "non-standard residue U at position 3"),
    ("MKXA", "map", None, "unknown residue X at position 3"),
    ("MK-A", "map", None, "invalid character '-' at position 3"),
    ("mkßa", "map", None, "invalid character 'ß' at position 3"),
    ("  *", "map", None, "empty sequence"),
    (None, "map", None, "record has no sequence"),
])
def test_clean_sequence_policy(raw, policy, expected, reason):
    result = clean_sequence(raw, policy)
    assert (result.sequence, result.reason) == (expected, reason)


def test_ids_must_be_safe_keys():
    assert check_id("sp|P12345|NAME_HUMAN") == ""
    assert "unsafe id 'a/b'" in check_id("a/b")
    assert check_id("") == "empty id"
    assert check_id("x" * 200) and check_id("has space") and check_id("trailing_newline\n")


def test_fasta_reader_and_malformed_file():
    records = list(read_fasta(FIXTURES / "mixed.fasta"))
    assert [r.input_id for r in records][:3] == ["P00001", "seq2", "seq3"]
    assert records[0].sequence == "MKTAYIAKQRQISFVKSHFS*" and "First protein" in records[0].description
    assert records[5].sequence is None  # header without sequence lines
    with pytest.raises(ValueError, match=r"bad\.fasta: line 1: sequence data before the first '>'"):
        list(read_fasta(FIXTURES / "bad.fasta"))


def test_fasta_headers_gzip_and_empty_header(tmp_path):
    fasta = tmp_path / "in.fasta.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(">tr|A0A000|X_YEAST\tSome name OS=Yeast\nMKV\n>\nMAA\n>plain\nMCC\n")
    records = list(read_fasta(fasta))
    assert [(r.input_id, r.description, r.sequence) for r in records] == [
        ("A0A000", "Some name OS=Yeast", "MKV"), ("", "", "MAA"), ("plain", "", "MCC")]
    summary, manifest = run_prepare(iter(records), tmp_path / "out")
    assert manifest.loc["", "reason"] == "empty id"
    assert summary["reason_counts"] == {"unsafe_id": 1}


def test_uniprot_parse_error_names_file_and_entry(tmp_path):
    with gzip.open(FIXTURES.parents[2] / "structure_tokens" / "data" / "demo_swissprot.dat.gz", "rt") as handle:
        first_entry = handle.read().split("//\n")[0] + "//\n"
    broken = tmp_path / "broken.dat"
    broken.write_text(first_entry + first_entry.replace("ID   ", "XX   ", 1))
    with pytest.raises(ValueError, match=r"broken\.dat: cannot parse UniProt entry number 2"):
        list(read_uniprot(broken))


@pytest.mark.parametrize("output", [
    "The determined function(s) of the protein include(s): Binds ATP.",
    "the predicted function of this protein includes:Binds ATP.",
    "The function of the protein is: Binds ATP.",
    "Binds ATP.",
])
def test_proteinlmbench_function_prefix_is_stripped(output, tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([{"instruction": "", "input": "<seq>MKV</seq>", "output": output, "id": "Q1"}]))
    [record] = read_proteinlmbench(export)
    assert (record.input_id, record.sequence, record.function) == ("Q1", "MKV", "Binds ATP.")


def test_proteinlmbench_unsupported_file(tmp_path):
    with pytest.raises(ValueError, match=r"export\.csv: unsupported ProteinLMBench file"):
        next(read_proteinlmbench(tmp_path / "export.csv"))


def test_prepare_accounts_for_every_record(tmp_path):
    summary, manifest = run_prepare(read_fasta(FIXTURES / "mixed.fasta"), tmp_path, min_length=3)
    assert len(manifest) == summary["n_records"] == 9
    status = manifest.reset_index(drop=True).groupby("input_id").status.apply(list).to_dict()
    assert status["P00001"] == ["kept"] and status["seq3"] == ["kept"]
    assert status["seq2"] == ["duplicate_sequence", "skipped"]  # same sequence as P00001, then a repeated id
    repeated = manifest[(manifest.input_id == "seq2") & (manifest.status == "skipped")].iloc[0]
    assert repeated.reason == "duplicate id seq2 (first at record 1)"
    assert manifest.loc["seq4", "reason"] == "unknown residue X at position 3"
    assert manifest.loc["seq5", "reason"] == "invalid character '1' at position 3"
    assert manifest.loc["seq6", "reason"] == "record has no sequence"
    assert manifest.loc["bad/id", "reason"].startswith("unsafe id 'bad/id'")
    assert manifest.loc["seq7", "reason"] == "length 2 < min_length 3"
    assert summary["shards"] == ["shard_00000"] and summary["n_proteins"] == 2
    proteins = read_shard(tmp_path / "shards" / "shard_00000.tsv")
    assert [p.id for p in proteins] == ["P00001", "seq3"]
    assert proteins[0].aliases == ("seq2",) and proteins[1].sequence == "MKCAYIAK"
    assert proteins[0].sequence_hash == sequence_hash("MKTAYIAKQRQISFVKSHFS")


def test_aliases_reach_shards_already_written(tmp_path):
    """A duplicate arriving after its representative's shard was written is still recorded."""
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMAAA\n>b\nMCCC\n>c\nMDDD\n>d\nMAAA\n")
    summary, manifest = run_prepare(read_fasta(fasta), tmp_path / "out", shard_size=1)
    assert summary["shards"] == ["shard_00000", "shard_00001", "shard_00002"]
    assert read_shard(tmp_path / "out/shards/shard_00000.tsv")[0].aliases == ("d",)
    assert manifest.loc["d", "protein_id"] == "a" and manifest.loc["d", "shard"] == "shard_00000"


def test_every_id_of_a_sequence_is_kept_as_alias(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMAAA\n>b\nmaaa*\n>c\nMCCC\n>d\nMCCC\n>e\nM A A A\n")
    summary, manifest = run_prepare(read_fasta(fasta), tmp_path / "out", shard_size=1)
    proteins = [p for shard in summary["shards"] for p in read_shard(tmp_path / "out/shards" / f"{shard}.tsv")]
    assert [(p.id, p.aliases) for p in proteins] == [("a", ("b", "e")), ("c", ("d",))]
    assert list(manifest.status) == ["kept", "duplicate_sequence", "kept", "duplicate_sequence", "duplicate_sequence"]
    assert list(manifest.protein_id) == ["a", "a", "c", "c", "a"]
    assert manifest.loc["e", "reason"] == "same sequence as a"


def test_reject_policy_and_stale_shards_removed(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMAAA\n>b\nMUAA\n>c\nMCCC\n")
    run_prepare(read_fasta(fasta), tmp_path / "out", shard_size=1)
    assert sorted(p.name for p in (tmp_path / "out/shards").iterdir()) == [f"shard_0000{i}.tsv" for i in range(3)]
    summary, manifest = run_prepare(read_fasta(fasta), tmp_path / "out", shard_size=1, nonstandard_residues="reject")
    assert manifest.loc["b", "reason"] == "non-standard residue U at position 2"
    assert summary["shards"] == ["shard_00000", "shard_00001"]
    assert sorted(p.name for p in (tmp_path / "out/shards").iterdir()) == ["shard_00000.tsv", "shard_00001.tsv"]


def test_num_proteins_and_max_length(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">p{i}\n{'M' + 'A' * i}\n" for i in range(1, 8)))
    summary, manifest = run_prepare(read_fasta(fasta), tmp_path / "out", num_proteins=3, max_length=6)
    assert summary["status_counts"] == {"kept": 3, "skipped": 2, "not_selected": 2}
    assert manifest.loc["p4", "status"] == "not_selected" and manifest.loc["p6", "reason"] == "length 7 > max_length 6"


def test_shards_are_deterministic(tmp_path):
    for run in ("a", "b"):
        run_prepare(read_demo(), tmp_path / run, shard_size=30)
    for shard in (tmp_path / "a/shards").iterdir():
        assert shard.read_bytes() == (tmp_path / "b/shards" / shard.name).read_bytes()
    assert (tmp_path / "a/manifest.tsv").read_bytes() == (tmp_path / "b/manifest.tsv").read_bytes()


def test_no_surviving_protein_is_an_error(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">x\nMXXX\n")
    with pytest.raises(ValueError, match="no protein survived"):
        run_prepare(read_fasta(fasta), tmp_path)


def test_demo_set():
    records = list(read_demo())
    assert len(records) == 100 and records[0].input_id == "P15455"
    assert sum(bool(r.function) for r in records) >= 90
    assert records[0].description == "12S seed storage protein CRU4"
    assert "{ECO:" not in " ".join(r.function for r in records)


@pytest.mark.parametrize("name", ["proteinlmbench_sample.jsonl", "proteinlmbench_sample.parquet"])
def test_proteinlmbench_local_file(name, tmp_path):
    records = list(read_proteinlmbench(FIXTURES / name))
    assert [r.input_id for r in records] == [f"plmb_train_{i:07d}" for i in range(5)]
    assert clean_sequence(records[0].sequence).sequence == "MKTAYIAKQR"
    assert records[0].function == "Binds ATP." and records[4].function == "Binds ATP again."
    assert records[2].sequence == "MAAAKKKLLL" and records[2].function == "Unknown function."
    assert records[3].sequence is None
    assert records[0].instruction == "What is the function of this protein?"
    summary, manifest = run_prepare(iter(records), tmp_path)
    assert manifest.loc["plmb_train_0000004", "status"] == "duplicate_sequence"


def test_proteinlmbench_download_failure_says_how_to_proceed(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(RuntimeError, match="set input.path to it"):
        next(read_proteinlmbench())


def test_open_source_errors():
    with pytest.raises(ValueError, match="unknown input.source 'pdb'"):
        open_source("pdb")
    with pytest.raises(ValueError, match="needs input.path"):
        open_source("fasta")


def test_real_uniprot_and_fasta_files(tmp_path):
    sequences = REAL_DATA / "sequences"
    emboss = list(read_uniprot(sequences / "emboss_test_swissprot_seq.dat.gz"))
    assert len(emboss) == 100 and all(r.sequence for r in emboss)
    biopython = [r for f in sorted((sequences / "biopython_tests_swissprot").glob("[A-Z]*.txt*"))
                 for r in read_uniprot(f)]
    assert len(biopython) >= 10 and all(r.input_id and r.sequence for r in biopython)
    subset = list(read_fasta(sequences / "swissprot_function_subset.fasta.gz"))
    assert len(subset) == 128
    records = list(itertools.islice(read_fasta(sequences / "mmseqs2_examples_DB_first2000.fasta.gz"), 2000))
    assert records[0].input_id == "W0FSK4"
    summary, manifest = run_prepare(iter(records), tmp_path, shard_size=500)
    assert len(manifest) == 2000 and summary["n_shards"] == -(-summary["n_proteins"] // 500)
    assert json.loads((tmp_path / "summary.json").read_text())["shards"] == summary["shards"]


@pytest.mark.parametrize("policy, status, length", [("windows", "kept", 1100), ("truncate", "kept", 1022),
                                                     ("skip", "skipped", 1100)])
def test_long_policy_is_applied_when_sharding(policy, status, length, tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">long\n" + "M" + "A" * 1099 + "\n>short\nMKV\n")
    _, manifest = run_prepare(read_fasta(fasta), tmp_path / "out", long_policy=policy)
    assert manifest.loc["long", "status"] == status and manifest.loc["long", "length"] == str(length)
    if policy != "windows":
        assert f"model.long_policy: {policy}" in manifest.loc["long", "reason"]
    proteins = read_shard(tmp_path / "out/shards/shard_00000.tsv")
    assert [p.length for p in proteins] == ([length, 3] if status == "kept" else [3])
