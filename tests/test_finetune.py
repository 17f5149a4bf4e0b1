"""Instruction-tuning data: rendering formats, leak-free splits, Parquet shards and manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from structure_tokens.cli import main
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.vocab import render_protein
from structure_tokens.llm.finetune import (SFT_SCHEMA, _PartTally, finetune_manifest, finetune_warnings,
                                           part_json, rendered_protein, row_group, row_target, sft_row,
                                           split_of, verify_finetune_data, write_finetune_data)
from structure_tokens.llm.dataset_card import COLUMNS
from structure_tokens.llm.options import FinetuneOptions
from structure_tokens.formats.vocab import protein_token_strings
from structure_tokens.formats.vocab import build_vocab, write_vocab
from structure_tokens.llm.outputs import PARQUET_SCHEMA

K = 8
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def random_sequence(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list(AMINO_ACIDS), size=length))


@pytest.fixture
def pipeline_outputs(tmp_path):
    """``tokens.parquet`` (2 row groups, 60 proteins; every 10th without function), vocab and codebook."""
    rng = np.random.default_rng(0)
    codebook = Codebook(rng.normal(size=(K, 4)).astype(np.float32), model_name="esm2_t6_8M_UR50D",
                        layer=6, seed=0, n_train=100)
    codebook.save(tmp_path / "codebook.npz")
    write_vocab(tmp_path / "vocab.json", K, 100, codebook.sha256)
    with pq.ParquetWriter(tmp_path / "tokens.parquet", PARQUET_SCHEMA) as writer:
        for shard in range(2):
            rows = []
            for i in range(30):
                number = shard * 30 + i
                sequence = random_sequence(rng, int(rng.integers(3, 12)))
                rows.append({"id": f"P{number:03d}", "aliases": [f"dup{number}"] if number % 7 == 0 else [],
                             "sequence": sequence, "length": len(sequence),
                             "structure_tokens": rng.integers(0, K, size=len(sequence)).tolist(),
                             "function": "" if number % 10 == 0 else f"Function of P{number:03d}.",
                             "n_unique_tokens": 0, "shard": f"shard_{shard:05d}"})
            writer.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA))
    return {"tokens": tmp_path / "tokens.parquet", "vocab": tmp_path / "vocab.json",
            "codebook": tmp_path / "codebook.npz", "sha256": codebook.sha256}


def test_render_formats():
    vocab = build_vocab(16)
    assert render_protein("MK", [12, 3], vocab, "interleaved") == "<protein><aa:M><S012><aa:K><S003></protein>"
    assert render_protein("MK", [12, 3], vocab, "combined") == "<protein><M|S012><K|S003></protein>"
    assert render_protein("MK", [12, 3], vocab, "blocks") == "<protein><aa:M><aa:K><S012><S003></protein>"
    assert protein_token_strings("Is <protein><aa:M><S012></protein> an enzyme?") == [
        "<protein>", "<aa:M>", "<S012>", "</protein>"]
    with pytest.raises(ValueError, match="length 2 has 1 structure tokens"):
        render_protein("MK", [1], vocab, "interleaved")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        render_protein("MK", [1, 16], vocab, "interleaved")
    with pytest.raises(ValueError, match=r"\['X'\]"):
        render_protein("MX", [1, 2], vocab, "blocks")


def test_split_of_is_deterministic_and_follows_fractions():
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    splits = [split_of(f"sequence:{i}", 0, fractions) for i in range(5000)]
    assert splits == [split_of(f"sequence:{i}", 0, fractions) for i in range(5000)]
    counts = {name: splits.count(name) / len(splits) for name in fractions}
    assert all(abs(counts[name] - fraction) < 0.02 for name, fraction in fractions.items())
    assert splits != [split_of(f"sequence:{i}", 1, fractions) for i in range(5000)]
    assert {split_of(f"sequence:{i}", 0, {"train": 1.0, "test": 0.0}) for i in range(200)} == {"train"}


def test_a_row_gives_its_target_group_split_and_sft_row():
    options = FinetuneOptions(seed=5, fractions={"train": 0.5, "test": 0.5})
    row = {"id": "P1", "aliases": ("A1",), "sequence": "MKV", "structure_tokens": [1, 2, 3],
           "function": "  Binds ATP. ", "description": None, "instruction": "  "}
    assert row_target(row, "function") == "Binds ATP." and row_target(row, "description") == ""
    assert row_group(row, None, options) == ("sequence:MKV", split_of("sequence:MKV", 5, options.fractions))
    assert row_group(row, {"A1": "R7"}, options)[0] == "cluster:R7"
    with pytest.raises(ValueError, match=r"protein P1 \(aliases \['A1'\]\) is in no cluster"):
        row_group(row, {"other": "R7"}, options)
    protein = rendered_protein(row, build_vocab(K), "combined", "t.parquet")
    assert protein == "<protein><M|S001><K|S002><V|S003></protein>"
    with pytest.raises(ValueError, match=r"^t\.parquet: protein P1: .*length 3 has 1 structure tokens"):
        rendered_protein({**row, "structure_tokens": [1]}, build_vocab(K), "combined", "t.parquet")
    sft = sft_row(row, "test", protein, "Binds ATP.", options)
    assert sft == {"id": "P1", "aliases": ["A1"], "split": "test", "instruction": options.instruction,
                   "protein": protein, "prompt": f"{options.instruction}\n{protein}\n", "completion": "Binds ATP.",
                   "n_residues": 3}
    assert list(sft) == SFT_SCHEMA.names
    assert sft_row({**row, "instruction": " Why? "}, "test", protein, "x", options)["instruction"] == "Why?"


def test_part_json_and_manifest_follow_the_counts():
    options = FinetuneOptions(format="combined", fractions={"train": 1.0})
    tally = _PartTally(np.array([2, 0, 1]), n_read=4, without_target=1)
    part = part_json(Path("x/shard.parquet"), "ab", "cd", options, tally, {"train": {"examples": 3}})
    assert (part["source"], part["proteins_read"], part["without_target"]) == ("x/shard.parquet", 4, 1)
    assert part["structure_usage"] == [2, 0, 1] and json.loads(json.dumps(part)) == part
    codebook = Codebook(np.zeros((K, 4), dtype=np.float32), model_name="m", layer=1, seed=0, n_train=1)
    splits = {"train": {"examples": 3, "files": [{"path": "data/train-00000.parquet"}]}}
    manifest = finetune_manifest(codebook, 100, options, {"files": 1}, {"proteins_read": 4, "without_target": 1,
                                 "examples": 3}, 2, splits, created="then")
    assert (manifest["created"], manifest["k"], manifest["vocab_offset"], manifest["combined_tokens_needed"]) == (
        "then", K, 100, True)
    assert manifest["data_files"] == {"train": ["data/train-00000.parquet"]} and manifest["splits"] == splits
    assert manifest["warnings"] == [] and manifest["split"]["fractions"] == {"train": 1.0}
    empty = finetune_manifest(codebook, 100, options, {}, {"proteins_read": 4, "without_target": 4, "examples": 0},
                              0, {"train": {"files": []}}, created="then")
    assert empty["warnings"] == finetune_warnings(4, 0, "function") != []


def test_warnings_only_for_an_empty_set_of_read_proteins():
    assert finetune_warnings(0, 0, "function") == [] and finetune_warnings(5, 1, "function") == []
    assert "finetune.target: description" in finetune_warnings(5, 0, "function")[0]
    assert finetune_warnings(5, 0, "description")[0].endswith("; no record has a description")


def test_options_are_validated():
    with pytest.raises(ValueError, match="sum to 1"):
        FinetuneOptions(fractions={"train": 0.9, "test": 0.2})
    with pytest.raises(ValueError, match="format 'saprot'"):
        FinetuneOptions(format="saprot")
    with pytest.raises(ValueError, match="needs finetune.clusters_tsv"):
        FinetuneOptions(split_method="clusters")


def test_sft_shards_manifest_and_load_dataset(pipeline_outputs, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "sft"
    options = FinetuneOptions(format="interleaved", rows_per_shard=20, seed=3)
    manifest = write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"],
                                   pipeline_outputs["codebook"], out, options)
    assert manifest["counts"] == {"proteins_read": 60, "without_target": 6, "examples": 54}
    assert manifest["codebook_sha256"] == pipeline_outputs["sha256"]
    assert manifest["model_name"] == "esm2_t6_8M_UR50D" and manifest["vocab_offset"] == 100
    assert sum(info["examples"] for info in manifest["splits"].values()) == 54
    train_files = manifest["splits"]["train"]["files"]
    assert len(train_files) >= 2 and all(f["rows"] <= 20 for f in train_files)

    loaded = datasets.load_dataset("parquet", data_dir=str(out / "data"))
    assert {name: loaded[name].num_rows for name in loaded} == {
        name: info["examples"] for name, info in manifest["splits"].items() if info["examples"]}
    tokens = pq.read_table(pipeline_outputs["tokens"]).to_pylist()
    by_id = {row["id"]: row for row in tokens}
    for name in loaded:
        for example in loaded[name]:
            source = by_id[example["id"]]
            assert example["split"] == name and example["completion"] == source["function"]
            assert example["instruction"] == options.instruction
            assert example["prompt"] == f"{options.instruction}\n{example['protein']}\n"
            strings = protein_token_strings(example["protein"])
            assert "".join(s[4] for s in strings if s.startswith("<aa:")) == source["sequence"]
            assert [int(s[2:-1]) for s in strings if s.startswith("<S")] == source["structure_tokens"]
            assert example["n_residues"] == len(source["sequence"])
    jsonl_rows = [json.loads(line) for path in sorted((out / "jsonl").glob("train-*.jsonl"))
                  for line in path.read_text().splitlines()]
    assert [row["id"] for row in jsonl_rows] == loaded["train"]["id"]
    assert [entry["rows"] for entry in manifest["splits"]["train"]["jsonl"]] == [f["rows"] for f in train_files]
    assert verify_finetune_data(out, codebook_sha256=pipeline_outputs["sha256"])["format"] == "interleaved"


def test_sft_folder_has_a_dataset_card_that_load_dataset_follows(pipeline_outputs, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "sft"
    manifest = write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"], pipeline_outputs["codebook"],
                                   out, FinetuneOptions(rows_per_shard=20), source="uniprot")
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "cc-by-4.0" and "The UniProt Consortium" in card
    assert [entry["name"] for entry in header["dataset_info"]["features"]] == list(COLUMNS)
    assert {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]} == {
        name: info["examples"] for name, info in manifest["splits"].items() if info["examples"]}
    assert manifest["codebook_sha256"] in card and "esm2_t6_8M_UR50D" in card
    loaded = datasets.load_dataset(str(out))  # the card's `configs` name the Parquet files of each split
    assert {name: loaded[name].num_rows for name in loaded} == {
        s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert list(loaded["train"].features) == list(COLUMNS)


def test_identical_sequences_share_a_split_and_instructions_are_kept(tmp_path, pipeline_outputs):
    """Duplicated sequences (e.g. two runs' tables concatenated) never straddle splits."""
    table = pq.read_table(pipeline_outputs["tokens"])
    copies = pa.array([f"{i}_copy" for i in table["id"].to_pylist()])
    doubled = pa.concat_tables([table, table.set_column(0, "id", copies)])
    instructions = [f"Question {i}?" if i % 2 else "" for i in range(len(doubled))]
    column = doubled.schema.get_field_index("instruction")
    pq.write_table(doubled.set_column(column, "instruction", pa.array(instructions)), tmp_path / "doubled.parquet")
    out = tmp_path / "sft"
    write_finetune_data(tmp_path / "doubled.parquet", pipeline_outputs["vocab"], pipeline_outputs["codebook"],
                        out, FinetuneOptions(format="blocks", fractions={"train": 0.5, "test": 0.5}, jsonl=False))
    rows = pq.read_table(out / "data").to_pylist()
    split_by_id = {row["id"]: row["split"] for row in rows}
    assert {split_by_id[i] == split_by_id[f"{i}_copy"] for i in table["id"].to_pylist() if i in split_by_id} == {True}
    assert {row["split"] for row in rows} == {"train", "test"}
    for row in rows:
        index = doubled["id"].to_pylist().index(row["id"])
        assert row["instruction"] == (instructions[index] or FinetuneOptions().instruction)
    assert not (out / "jsonl").exists()


def test_cluster_splits_keep_clusters_together(tmp_path, pipeline_outputs):
    ids = pq.read_table(pipeline_outputs["tokens"])["id"].to_pylist()
    clusters = tmp_path / "clusters.tsv"
    clusters.write_text("".join(f"{ids[i - i % 5]}\t{ids[i]}\n" for i in range(len(ids))))
    out = tmp_path / "sft"
    manifest = write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"], pipeline_outputs["codebook"],
                                   out, FinetuneOptions(split_method="clusters", clusters_tsv=str(clusters),
                                                        format="combined", fractions={"train": 0.5, "test": 0.5}))
    split_by_id = {row["id"]: row["split"] for row in pq.read_table(out / "data").to_pylist()}
    for start in range(0, len(ids), 5):
        assert len({split_by_id[i] for i in ids[start:start + 5] if i in split_by_id}) == 1
    assert sum(info["groups"] for info in manifest["splits"].values()) == 12

    clusters.write_text(f"{ids[0]}\t{ids[0]}\n")
    with pytest.raises(ValueError, match=f"protein {ids[1]} .* is in no cluster"):
        write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"], pipeline_outputs["codebook"],
                            out, FinetuneOptions(split_method="clusters", clusters_tsv=str(clusters)))


def test_manifest_catches_changed_files_and_wrong_codebook(tmp_path, pipeline_outputs):
    out = tmp_path / "sft"
    manifest = write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"],
                                   pipeline_outputs["codebook"], out, FinetuneOptions(jsonl=False))
    with pytest.raises(ValueError, match="codebook_sha256"):
        verify_finetune_data(out, codebook_sha256="0" * 64)
    first = out / manifest["splits"]["train"]["files"][0]["path"]
    pq.write_table(pq.read_table(first).slice(1), first)
    with pytest.raises(ValueError, match="missing or changed"):
        verify_finetune_data(out)
    other = Codebook(np.zeros((K, 4), dtype=np.float32), model_name="m", layer=1, seed=0, n_train=1)
    other.save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="was written for codebook"):
        write_finetune_data(pipeline_outputs["tokens"], pipeline_outputs["vocab"], tmp_path / "other.npz", out)


def test_cli_finetune_data(tmp_path, pipeline_outputs, capsys):
    args = ["finetune-data", "--tokens", str(pipeline_outputs["tokens"]), "--vocab", str(pipeline_outputs["vocab"]),
            "--codebook", str(pipeline_outputs["codebook"]), "--out", str(tmp_path / "sft"), "--format", "combined",
            "--fractions", "train=0.5,test=0.5", "--no-jsonl"]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "sft" / "manifest.json").read_text())
    assert manifest["format"] == "combined" and set(manifest["splits"]) == {"train", "test"}
    assert json.loads(capsys.readouterr().err) == {s: i["examples"] for s, i in manifest["splits"].items()}
    assert main(args[:-3] + ["--fractions", "train=0.5,test=0.6"]) == 1
    assert "must be >= 0 and sum to 1" in capsys.readouterr().err


def test_readme_example_runs_offline(tmp_path, monkeypatch, capfd):
    """The "Minimal example" of docs/finetuning.md, executed as written."""
    pytest.importorskip("transformers")
    doc = (Path(__file__).resolve().parents[1] / "docs/finetuning.md").read_text()
    example = re.search(r"### Minimal example.*?```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/finetuning.md", "exec"), {"__name__": "readme_example"})
    output = capfd.readouterr()
    assert re.fullmatch(r"batch \(2, \d+\), loss \d+\.\d+, 39 protein tokens mapped", output.out.strip())
    assert "within the vocabulary" not in output.err  # transformers' complaint about GPT-2's default ids


def split_into_parts(table_path: Path, folder: Path, sizes: list[int]) -> Path:
    """The rows of a token table as a folder of Parquet parts of ``sizes`` rows (the pipeline's layout)."""
    table = pq.read_table(table_path)
    folder.mkdir()
    start = 0
    for number, size in enumerate(sizes):
        pq.write_table(table.slice(start, size), folder / f"shard_{number:05d}.parquet")
        start += size
    assert start == len(table)
    return folder


def test_a_folder_of_parts_gives_the_rows_of_the_whole_table(pipeline_outputs, tmp_path, monkeypatch):
    """Per-shard parts assembled into one folder: the same rows, splits and counts as one table read at once;
    a sequence repeated in two parts is one group, in one split. Rows are read and written 3 at a time."""
    from structure_tokens.llm import finetune

    monkeypatch.setattr(finetune, "ROWS_PER_BATCH", 3)
    table = pq.read_table(pipeline_outputs["tokens"])
    repeated = table.slice(0, 5).set_column(0, "id", pa.array([f"again{i}" for i in range(5)]))
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.concat_tables([table, repeated]), whole)
    parts = split_into_parts(whole, tmp_path / "parts", [7, 30, 0, 28])
    options = FinetuneOptions(rows_per_shard=8, seed=1)
    one = write_finetune_data(whole, pipeline_outputs["vocab"], pipeline_outputs["codebook"], tmp_path / "one", options)
    many = write_finetune_data(parts, pipeline_outputs["vocab"], pipeline_outputs["codebook"], tmp_path / "many",
                               options)
    rows = {name: pq.read_table(tmp_path / name / "data").to_pandas().sort_values("id").reset_index(drop=True)
            for name in ("one", "many")}
    pd.testing.assert_frame_equal(rows["one"], rows["many"])
    for key in ("counts", "structure_tokens_used"):
        assert one[key] == many[key]
    for split in options.fractions:
        for key in ("examples", "groups", "residues", "protein_tokens", "target_chars"):
            assert one["splits"][split][key] == many["splits"][split][key], (split, key)
    examples = sum(info["examples"] for info in many["splits"].values())
    twice = sum(1 for text in repeated["function"].to_pylist() if text)  # sequences with a target, in two parts
    assert twice == 4 and sum(info["groups"] for info in many["splits"].values()) == examples - twice
    assert all(f["rows"] <= 8 for info in many["splits"].values() for f in info["files"])
    full = next(f for f in many["splits"]["train"]["files"] if f["rows"] == 8)
    assert pq.ParquetFile(tmp_path / "many" / full["path"]).num_row_groups == 3  # 3 + 3 + 2 rows
    assert verify_finetune_data(tmp_path / "many")["source"]["files"] == 4
    assert not list(tmp_path.glob(".*"))  # no scratch folder left


def test_fasta_input_warns_and_can_use_descriptions(pipeline_outputs, tmp_path, caplog):
    """Records without function text (FASTA) give an empty set with a warning in the log, the manifest and the
    dataset card; `target: description` builds the rows from the descriptions (the FASTA headers) instead."""
    table = pq.read_table(pipeline_outputs["tokens"])
    headers = [f"header text of P{i:03d}" if i % 4 else "" for i in range(len(table))]
    fasta_like = table.set_column(table.schema.get_field_index("function"), "function", pa.array([""] * len(table)))
    fasta_like = fasta_like.set_column(fasta_like.schema.get_field_index("description"), "description",
                                       pa.array(headers))
    pq.write_table(fasta_like, tmp_path / "fasta.parquet")
    args = (tmp_path / "fasta.parquet", pipeline_outputs["vocab"], pipeline_outputs["codebook"])
    with caplog.at_level("WARNING"):
        empty = write_finetune_data(*args, tmp_path / "empty")
    assert empty["counts"] == {"proteins_read": 60, "without_target": 60, "examples": 0}
    assert empty["warnings"] and "finetune.target: description" in empty["warnings"][0]
    assert "the instruction data is empty: none of the 60 proteins has function text" in caplog.text
    assert "**Warning:** the instruction data is empty" in (tmp_path / "empty/README.md").read_text()
    described = write_finetune_data(*args, tmp_path / "described", FinetuneOptions(target="description"))
    assert described["counts"]["examples"] == 45 and not described["warnings"]
    rows = pq.read_table(tmp_path / "described/data").to_pylist()
    assert {row["completion"] for row in rows} == {h for h in headers if h}
    assert "the protein's description" in (tmp_path / "described/README.md").read_text()
    with pytest.raises(ValueError, match="finetune.target 'name'"):
        FinetuneOptions(target="name")


def test_distinct_groups_are_counted_one_range_of_hashes_at_a_time(tmp_path, monkeypatch):
    from structure_tokens.llm import finetune

    monkeypatch.setattr(finetune, "GROUPS_PER_RANGE", 100)  # 1,000 hashes: about 10 ranges
    rng = np.random.default_rng(0)
    shared = rng.integers(0, 2**64, size=200, dtype=np.uint64)
    files = []
    for number in range(4):
        values = np.concatenate([shared[rng.random(200) < 0.5], rng.integers(0, 2**64, 150, dtype=np.uint64),
                                 np.array([0, 2**64 - 1], dtype=np.uint64)])
        files.append(tmp_path / f"groups-{number}.npy")
        np.save(files[-1], np.unique(values))
    every = np.concatenate([np.load(path) for path in files])
    assert finetune.count_distinct(files, len(every)) == len(np.unique(every))
    assert finetune.count_distinct([], 0) == 0


def test_parts_made_with_other_options_are_refused(pipeline_outputs, tmp_path):
    from structure_tokens.llm.finetune import assemble_finetune_data, write_finetune_part

    part = tmp_path / "part"
    write_finetune_part(pipeline_outputs["tokens"], pipeline_outputs["vocab"], pipeline_outputs["codebook"], part,
                        FinetuneOptions(format="blocks"))
    with pytest.raises(ValueError, match=f"{part} was made with codebook .*'format': 'blocks'"):
        assemble_finetune_data([part], pipeline_outputs["vocab"], pipeline_outputs["codebook"], tmp_path / "sft")
    assert not (tmp_path / "sft").exists()
