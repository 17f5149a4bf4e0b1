"""The prepare stage beyond the basics: ids unique over sources, summary provenance, no partial outputs."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from structure_tokens.formats.shards import read_shard
from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.prepare import prepare_inputs
from structure_tokens.inputs.readers import read_fasta
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.seen import SeenIndex


def prepare(records, out, **options):
    options.setdefault("shard_size", 2)
    return prepare_inputs(records, InputOptions(**options), shards_dir=out / "shards",
                          manifest_path=out / "manifest.tsv", summary_path=out / "summary.json")


def test_ids_are_unique_over_every_source(tmp_path):
    first, second = tmp_path / "a.fasta", tmp_path / "b.fasta"
    first.write_text(">x\nMKV\n")
    second.write_text(">x\nMAA\n>y\nMCC\n")
    prepare(itertools.chain(read_fasta(first), read_fasta(second)), tmp_path / "out")
    rows = (tmp_path / "out/manifest.tsv").read_text().splitlines()
    assert rows[2].split("\t")[2:5] == ["x", "skipped", "duplicate id x (first at record 0)"]
    assert [p.id for p in read_shard(tmp_path / "out/shards/shard_00000.tsv")] == ["x", "y"]


def test_summary_records_the_configured_input(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKV\n>b\nMKV\n>c\nMAAX\n")
    summary = prepare(read_fasta(fasta), tmp_path / "out", source="fasta", path=str(fasta))
    assert json.loads((tmp_path / "out/summary.json").read_text()) == summary
    assert (summary["source"], summary["input_path"], summary["sources"]) == ("fasta", str(fasta), [str(fasta)])
    assert summary["status_counts"] == {"kept": 1, "duplicate_sequence": 1, "skipped": 1}
    assert summary["reason_counts"] == {"duplicate_sequence": 1, "unknown_residue": 1}
    assert (summary["n_proteins"], summary["n_residues"], summary["shards"]) == (1, 3, ["shard_00000"])


def test_failed_run_leaves_no_manifest_or_summary(tmp_path):
    records = [InputRecord("mem", 0, "a", "MXK"), InputRecord("mem", 1, "b", None)]
    with pytest.raises(ValueError, match=r"no protein survived validation of mem: "
                                         r"\{'unknown_residue': 1, 'no_sequence': 1\}"):
        prepare(iter(records), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["shards"]


def test_seen_index_remembers_ids_sequences_and_aliases_on_disk(tmp_path):
    killed_run = tmp_path / ".prepare-index-killed"
    killed_run.mkdir()
    (killed_run / "seen.sqlite").write_bytes(b"left by a killed run")
    with SeenIndex(tmp_path) as seen:
        [folder] = tmp_path.iterdir()
        assert folder != killed_run
        assert (folder / "seen.sqlite").is_file()
        assert seen.first_record_of("a", 0) is None and seen.first_record_of("a", 5) == 0
        assert seen.representative("h1") is None
        seen.add_representative("h1", "a", "shard_00000")
        assert seen.representative("h1") == ("a", "shard_00000")
        for owner, shard, alias in [("a", "shard_00000", "b"), ("x", "shard_00002", "c"), ("a", "shard_00000", "d")]:
            seen.add_alias(owner, shard, alias)
        assert seen.shards_with_aliases() == ["shard_00000", "shard_00002"]
        assert list(seen.aliases_in("shard_00000")) == [("a", "b"), ("a", "d")]
    assert list(tmp_path.iterdir()) == []


def test_prepare_leaves_only_its_outputs(tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">p{i}\nMK{'A' * (i % 3)}\n" for i in range(7)))
    prepare(read_fasta(fasta), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.tsv", "shards", "summary.json"]
    assert [p.aliases for p in read_shard(tmp_path / "out/shards/shard_00000.tsv")] == [("p3", "p6"), ("p4",)]


@pytest.mark.parametrize("option, message", [({"shard_size": 0}, "shard_size must be >= 1"),
                                             ({"nonstandard_residues": "drop"}, "nonstandard_residues must be one of")])
def test_invalid_options_are_rejected(option, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        prepare(iter([InputRecord("mem", 0, "a", "MKV")]), tmp_path / "out", **option)


def test_a_rerun_leaves_unchanged_shards_untouched(tmp_path):
    """Snakemake re-runs the embed job of a shard file newer than its output: a `prepare` rerun
    rewrites only the shards whose bytes change, here the one with an edited protein (aliases and
    shards that did not exist before included)."""
    fasta, out = tmp_path / "in.fasta", tmp_path / "out"
    records = [f">p{i}\nMK{'ACDEFGHIKL'[i % 10] * (1 + i // 10)}\n" for i in range(12)]
    fasta.write_text("".join(records) + ">p0_again\nMKA\n")  # an alias of p0, in shard 0
    prepare(read_fasta(fasta), out, shard_size=4, num_proteins=8)
    shards = sorted((out / "shards").glob("shard_*.tsv"))
    assert [p.name for p in shards] == ["shard_00000.tsv", "shard_00001.tsv"]
    assert read_shard(shards[0])[0].aliases == ("p0_again",)
    for path in shards:
        os.utime(path, ns=(10**18, 10**18))  # an old run's files
    before = {path.name: path.read_bytes() for path in shards}

    prepare(read_fasta(fasta), out, shard_size=4)  # scale up: all 12
    now = sorted((out / "shards").glob("shard_*.tsv"))
    assert [p.name for p in now] == ["shard_00000.tsv", "shard_00001.tsv", "shard_00002.tsv"]
    for name, content in before.items():
        assert (out / "shards" / name).read_bytes() == content
        assert (out / "shards" / name).stat().st_mtime_ns == 10**18, name
    assert [p.id for p in read_shard(now[2])] == ["p8", "p9", "p10", "p11"]

    fasta.write_text(fasta.read_text().replace(">p5\nMKG\n", ">p5\nMKW\n"))  # edit one protein of shard 1
    prepare(read_fasta(fasta), out, shard_size=4)
    assert (out / "shards/shard_00000.tsv").stat().st_mtime_ns == 10**18
    assert (out / "shards/shard_00001.tsv").stat().st_mtime_ns != 10**18
    assert read_shard(out / "shards/shard_00001.tsv")[1].sequence == "MKW"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.tsv", "shards", "summary.json"]
