"""Library API and CLI: tokenize new sequences with a tiny random ESM-2 and a matching codebook."""

from __future__ import annotations

import csv
import json
import re
import sys

import numpy as np
import pytest

from structure_tokens.api import decode, StructureTokenizer
from structure_tokens.formats.vocab import parse_stream
from structure_tokens.cli import main
from structure_tokens.codebook.assign import assign
from structure_tokens.formats.codebook import Codebook
from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.embedder import Embedder
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.shards import Protein
from structure_tokens.inputs.validate import sequence_hash
from structure_tokens.formats.atomic import write_json
from structure_tokens.formats.vocab import build_vocab, interleave

SEQUENCES = {"P1": "MKTAYIAKQRQISFVKSHFSRQ", "P2": "GSHMLEDPVDAF", "P3": "MNPQRSTVWYACDEFGHIKL"}


@pytest.fixture(scope="module")
def model_and_codebook(tiny_checkpoint, tmp_path_factory):
    """The tiny model and a K=8 codebook whose centroids are 8 residue embeddings of P1 (positions 0..14, step 2)."""
    model, alphabet, model_name, _ = load_esm2(tiny_checkpoint)
    options = EmbedOptions(device="cpu")
    reference = Protein("P1", SEQUENCES["P1"], sequence_hash(SEQUENCES["P1"]))
    [(_, embedding)] = list(Embedder(model, alphabet, options).embed([reference]))
    centroids = embedding[0:16:2].astype(np.float32)
    codebook_npz = tmp_path_factory.mktemp("codebook") / "codebook_K8.npz"
    Codebook(centroids, model_name=model_name, layer=model.num_layers, seed=0, n_train=8).save(codebook_npz)
    return {"checkpoint": tiny_checkpoint, "codebook": codebook_npz, "options": options, "embedding": embedding}


@pytest.fixture(scope="module")
def tokenizer(model_and_codebook):
    return StructureTokenizer.from_files(model_and_codebook["checkpoint"], model_and_codebook["codebook"],
                                         model_and_codebook["options"])


def test_tokenize_assigns_nearest_centroids(tokenizer, model_and_codebook):
    proteins = tokenizer.tokenize([("P1", SEQUENCES["P1"]), "gshml edpvdaf*", ("P3", SEQUENCES["P3"])])
    assert [p.id for p in proteins] == ["P1", "seq1", "P3"]
    assert proteins[1].sequence == SEQUENCES["P2"]
    assert all(p.structure_tokens.dtype == np.uint16 and len(p.structure_tokens) == len(p.sequence)
               for p in proteins)
    np.testing.assert_array_equal(proteins[0].structure_tokens[0:16:2], np.arange(8))
    np.testing.assert_array_equal(proteins[0].structure_tokens,
                                  assign(model_and_codebook["embedding"], tokenizer.codebook.centroids))
    assert tokenizer.vocab["codebook_sha256"] == tokenizer.codebook.sha256
    strings, ids = tokenizer.interleave(proteins[2])
    assert strings[:2] == ["M", f"S{proteins[2].structure_tokens[0]:03d}"]
    assert decode(ids, tokenizer.vocab) == SEQUENCES["P3"]


def test_fasta_and_sequences_give_the_same_tokens(tokenizer, tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{pid} some protein\n{seq[:10]}\n{seq[10:]}\n" for pid, seq in SEQUENCES.items()))
    from_fasta = tokenizer.tokenize_fasta(fasta)
    from_tuples = tokenizer.tokenize(SEQUENCES.items())
    assert [p.id for p in from_fasta] == list(SEQUENCES)
    for a, b in zip(from_fasta, from_tuples):
        assert a.sequence == b.sequence
        np.testing.assert_array_equal(a.structure_tokens, b.structure_tokens)
    fasta.write_text(">bad\nMKXA\n")
    with pytest.raises(ValueError, match=r"in.fasta: protein bad .*unknown residue X at position 3"):
        tokenizer.tokenize_fasta(fasta)


def test_codebook_of_another_model_is_refused(model_and_codebook, tmp_path):
    other = tmp_path / "other.npz"
    Codebook(np.zeros((4, 16), dtype=np.float32), model_name="esm2_t6_8M_UR50D", layer=6, seed=0,
             n_train=1).save(other)
    with pytest.raises(ValueError, match="does not match the codebook") as error:
        StructureTokenizer.from_files(model_and_codebook["checkpoint"], other, model_and_codebook["options"])
    assert str(other) in str(error.value)


@pytest.mark.parametrize("fmt", ["interleaved", "combined", "blocks"])
def test_render_and_decode_round_trip(tokenizer, fmt):
    [protein] = tokenizer.tokenize([("P3", SEQUENCES["P3"])])
    text = tokenizer.render(protein, fmt)
    assert text.startswith("<protein>") and text.endswith("</protein>")
    assert parse_stream(f"Answer: {text} done", tokenizer.vocab) == (SEQUENCES["P3"], protein.structure_tokens.tolist())


def test_decode_ids_and_vocabulary_strings():
    vocab = build_vocab(16, vocab_offset=1000)
    strings, ids = interleave("MKW", np.array([3, 15, 0], dtype=np.uint16), vocab)
    assert strings == ["M", "S003", "K", "S015", "W", "S000"]
    assert decode(ids, vocab) == decode(strings, vocab) == "MKW"
    assert parse_stream([vocab["token_to_id"]["<protein>"], *ids], vocab) == ("MKW", [3, 15, 0])
    with pytest.raises(ValueError, match="id 5 is not in the vocabulary"):
        decode([5], vocab)
    with pytest.raises(ValueError, match="not a structure token of this vocabulary"):
        decode("<aa:M><S020>", vocab)


def test_cli_tokenize_and_decode(model_and_codebook, tmp_path, capsys):
    out = tmp_path / "tokens.jsonl"
    assert main(["tokenize", "--checkpoint", str(model_and_codebook["checkpoint"]),
                 "--codebook", str(model_and_codebook["codebook"]), "--device", "cpu",
                 "--sequence", SEQUENCES["P1"], "--sequence", SEQUENCES["P2"], "--format", "blocks",
                 "--out", str(out), "--vocab", str(tmp_path / "vocab.json")]) == 0
    residues = len(SEQUENCES["P1"]) + len(SEQUENCES["P2"])
    assert re.search(rf"2 proteins, {residues} residues in [0-9.]+ s \(\d+ residues/s\) on cpu -> ",
                     capsys.readouterr().err)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["sequence"] for row in rows] == [SEQUENCES["P1"], SEQUENCES["P2"]]
    assert rows[0]["structure_tokens"][0:16:2] == list(range(8))
    assert main(["decode", "--vocab", str(tmp_path / "vocab.json"), rows[1]["text"]]) == 0
    assert capsys.readouterr().out.strip() == SEQUENCES["P2"]
    assert main(["tokenize", "--checkpoint", str(model_and_codebook["checkpoint"]),
                 "--codebook", str(model_and_codebook["codebook"]), "--sequence", "MK1", "--out", str(out)]) == 1
    assert "invalid character '1' at position 3" in capsys.readouterr().err


def test_cli_shows_a_progress_bar_only_on_a_terminal(model_and_codebook, tmp_path, capsys, monkeypatch):
    args = ["tokenize", "--checkpoint", str(model_and_codebook["checkpoint"]), "--codebook",
            str(model_and_codebook["codebook"]), "--device", "cpu", "--sequence", SEQUENCES["P1"],
            "--out", str(tmp_path / "tokens.jsonl")]
    assert main(args) == 0
    assert "embedding:" not in capsys.readouterr().err  # not a terminal: no bar in logs or pipes
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(args) == 0
    n = len(SEQUENCES["P1"])
    assert re.search(rf"embedding: 100%\|.*\| {n}\.0/{n}\.0 \[", capsys.readouterr().err)


@pytest.mark.parametrize("text, problem", [
    ("hello world", r"no protein tokens in the text"),
    ("<protein><aa:M><S001><aa:K><S0", r"incomplete or malformed protein token '<S0' at character 27"),
    ("<protein><aa:M><S001><aa:K", r"incomplete or malformed protein token '<aa:K' at character 21"),
    ("<protein><aa:M><S001>", r"ends inside the protein opened at character 0 \(no </protein>\)"),
])
def test_decode_refuses_text_without_a_whole_stream_naming_the_position(text, problem, tmp_path, capsys):
    vocab = build_vocab(k=16)
    with pytest.raises(ValueError, match=problem):
        decode(text, vocab)
    write_json(tmp_path / "vocab.json", vocab)
    assert main(["decode", "--vocab", str(tmp_path / "vocab.json"), text]) != 0
    assert re.search(problem, capsys.readouterr().err)


LONG = "M" + "KTAYIAKQRQISFVKSHFSRQ" * 71 + "A" * 8  # 1,500 residues


def test_truncated_proteins_come_back_with_the_residues_that_were_embedded(model_and_codebook):
    tokenizer = StructureTokenizer.from_files(model_and_codebook["checkpoint"], model_and_codebook["codebook"],
                                              EmbedOptions(device="cpu", long_policy="truncate"))
    [protein] = tokenizer.tokenize([("long", LONG)])
    assert protein.sequence == LONG[:1022] and len(protein.structure_tokens) == 1022
    assert decode(tokenizer.render(protein), tokenizer.vocab) == LONG[:1022]
    with pytest.raises(ValueError, match=r"protein P1 \(input 1\): duplicate id P1 \(first at record 0\)"):
        tokenizer.tokenize([("P1", SEQUENCES["P1"]), ("P1", SEQUENCES["P2"])])


@pytest.mark.parametrize("policy", ["truncate", "skip", "windows"])
def test_cli_tokenizes_every_valid_record_and_lists_the_skipped_ones(policy, tokenizer, model_and_codebook, tmp_path,
                                                                     capsys):
    """As the workflow's `prepare`: a long protein follows --long-policy, an invalid record or a repeated
    id is skipped with its reason (on stderr and in OUT.skipped.tsv), every other record gets tokens."""
    fasta = tmp_path / "new.fasta"
    fasta.write_text(f">P1 first\n{SEQUENCES['P1']}\n>long\n{LONG}\n>bad\nMKXA\n>P1 again\n{SEQUENCES['P2']}\n"
                     f">P2\n{SEQUENCES['P2']}\n>P3 same sequence as P1\n{SEQUENCES['P1']}\n")
    out = tmp_path / "new_tokens.jsonl"
    assert main(["tokenize", "--checkpoint", str(model_and_codebook["checkpoint"]), "--codebook",
                 str(model_and_codebook["codebook"]), "--device", "cpu", "--long-policy", policy,
                 "--fasta", str(fasta), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    kept_long = {"truncate": LONG[:1022], "skip": None, "windows": LONG}[policy]
    assert list(rows) == ["P1"] + (["long"] if kept_long else []) + ["P2", "P3"]
    for protein_id, sequence in [("P1", SEQUENCES["P1"]), ("P2", SEQUENCES["P2"]), ("P3", SEQUENCES["P1"])]:
        [expected] = tokenizer.tokenize([sequence])
        assert rows[protein_id]["sequence"] == sequence
        assert rows[protein_id]["structure_tokens"] == expected.structure_tokens.tolist()
    if kept_long:
        assert rows["long"]["sequence"] == kept_long and len(rows["long"]["structure_tokens"]) == len(kept_long)
        assert rows["long"]["text"].count("<aa:") == len(kept_long)

    reasons = {"long": "length 1500 > 1022, the model's window (model.long_policy: skip)",
               "bad": "unknown residue X at position 3", "P1": "duplicate id P1 (first at record 0)"}
    if policy != "skip":
        del reasons["long"]
    skipped_file = tmp_path / "new_tokens.skipped.tsv"
    skipped = list(csv.DictReader(skipped_file.open(), delimiter="\t"))
    assert [(row["input_id"], row["status"], row["reason"]) for row in skipped] == [
        (protein_id, "skipped", reason) for protein_id, reason in reasons.items()]
    assert {row["source"] for row in skipped} == {str(fasta)}
    for (protein_id, reason), row in zip(reasons.items(), skipped):
        assert f"skipped {fasta} record {row['record_index']} ({protein_id}): {reason}" in err
    assert re.search(rf"{len(rows)} proteins, .* -> {out}; {len(reasons)} records skipped -> {skipped_file}", err)


def test_cli_without_a_valid_record_fails_and_says_why(model_and_codebook, tmp_path, capsys):
    out = tmp_path / "tokens.jsonl"
    assert main(["tokenize", "--checkpoint", str(model_and_codebook["checkpoint"]), "--codebook",
                 str(model_and_codebook["codebook"]), "--sequence", "MKXA", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "skipped --sequence record 0 (seq0): unknown residue X at position 3" in err
    assert f"no record of --sequence can be tokenized (1 skipped, reasons in {tmp_path / 'tokens.skipped.tsv'})" in err
    assert not out.exists()


def test_cli_decode_accepts_a_byte_order_mark(tmp_path, capsys):
    vocab = tmp_path / "vocab.json"
    vocab.write_bytes("\ufeff".encode() + json.dumps(build_vocab(16)).encode())
    assert main(["decode", "--vocab", str(vocab), "<protein><aa:M><S001><aa:K><S002></protein>"]) == 0
    assert capsys.readouterr().out.strip() == "MK"


def test_cli_help_has_no_markup_and_every_option_explains_itself():
    from structure_tokens.cli import build_parser

    parser = build_parser()
    assert "``" not in parser.format_help()
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"structure-tokens {command} {action.option_strings[0]} has no help text"
