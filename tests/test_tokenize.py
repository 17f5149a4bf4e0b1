"""Tokenization of embedding shards and the LLM outputs (parquet, vocab, interleaved JSONL)."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest

from structure_tokens.codebook.assign import assign
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.shards import Protein, read_shard, write_shard
from structure_tokens.formats.tokens import TokenShard
from structure_tokens.tokenize.from_embeddings import tokenize_shard
from structure_tokens.formats.vocab import build_vocab, interleave, write_vocab
from structure_tokens.llm.options import OutputOptions
from structure_tokens.llm.outputs import write_shard_outputs
from conftest import N_BLOBS, blob_centers, flip_bit_in_dataset, prepared_protein, write_all_shard_outputs


def test_tokens_h5_round_trip(tokenized):
    codebook = Codebook.load(tokenized["codebook"])
    for embedding_h5, token_h5 in zip(tokenized["embeddings"], tokenized["tokens"]):
        with EmbeddingShard(embedding_h5) as emb, TokenShard(token_h5) as tok:
            assert tok.ids == list(emb.ids) and tok.sequence_hashes == list(emb.sequence_hashes)
            np.testing.assert_array_equal(tok.offsets, emb.offsets)
            assert tok.tokens.dtype == np.uint16 and tok.k == N_BLOBS
            assert tok.codebook_sha256 == codebook.sha256
            for i, protein_id in enumerate(tok.ids):
                np.testing.assert_array_equal(tok.protein(i), tokenized["proteins"][protein_id][2])
                np.testing.assert_array_equal(tok.protein(i), assign(emb.protein(i), codebook.centroids))


def test_tokenize_rejects_a_codebook_of_another_model(tokenized, tmp_path):
    other = tmp_path / "other.npz"
    Codebook(blob_centers(), model_name="esm2_t33_650M_UR50D", layer=33, seed=0, n_train=1).save(other)
    with pytest.raises(ValueError, match="does not match codebook") as error:
        tokenize_shard(tokenized["embeddings"][0], other, tmp_path / "out.h5")
    assert str(tokenized["embeddings"][0]) in str(error.value) and str(other) in str(error.value)
    assert not (tmp_path / "out.h5").exists()


def test_vocab_order_and_offset(tmp_path):
    vocab = build_vocab(1000, vocab_offset=32000)
    assert vocab["amino_acids"] == list("ACDEFGHIKLMNPQRSTVWY")
    assert vocab["structure_tokens"][0] == "S000" and vocab["structure_tokens"][-1] == "S999"
    assert build_vocab(1001)["structure_tokens"][-1] == "S1000"
    assert build_vocab(1001)["structure_tokens"][0] == "S0000"
    ids = vocab["token_to_id"]
    assert ids["A"] == 32000 and ids["Y"] == 32019 and ids["S000"] == 32020 and ids["S999"] == 33019
    assert [ids[t] for t in ("<protein>", "</protein>", "<pad>")] == [33020, 33021, 33022]
    assert sorted(ids.values()) == list(range(32000, 32000 + 20 + 1000 + 3))
    returned = write_vocab(tmp_path / "vocab.json", 4, 5, "abc")
    written = json.loads((tmp_path / "vocab.json").read_text())
    assert written == returned
    header = (written["format_version"], written["k"], written["vocab_offset"], written["codebook_sha256"])
    assert header == (1, 4, 5, "abc")


def test_interleave_alternates_residue_and_structure_token():
    vocab = build_vocab(16, vocab_offset=10)
    strings, ids = interleave("MKV", [3, 0, 15], vocab)
    assert strings == ["M", "S003", "K", "S000", "V", "S015"]
    assert ids == [10 + 10, 10 + 20 + 3, 10 + 8, 10 + 20, 10 + 17, 10 + 20 + 15]
    with pytest.raises(ValueError, match="length 3 has 2"):
        interleave("MKV", [1, 2], vocab)
    with pytest.raises(ValueError, match=r"\['X'\] are not among"):
        interleave("MXV", [1, 2, 3], vocab)


def test_llm_outputs(tokenized, tmp_path):
    stats = write_all_shard_outputs(tokenized, tmp_path, vocab_offset=100)
    table = pd.read_parquet(tmp_path / "tokens.parquet")  # the folder of shard parts reads as one table
    proteins = tokenized["proteins"]
    assert len(table) == sum(s["n_proteins"] for s in stats) == len(proteins)
    # shard order, then input order within the shard (the TSVs list proteins in reverse)
    expected_order = [p.id for tsv in tokenized["tsvs"] for p in read_shard(tsv)]
    assert table.id.tolist() == expected_order
    for row in table.itertuples():
        sequence, _, labels = proteins[row.id]
        assert row.sequence == sequence and row.length == len(sequence)
        np.testing.assert_array_equal(row.structure_tokens, labels)
        assert row.n_unique_tokens == len(set(labels)) and list(row.aliases) == [f"{row.id}_alias"]
        assert row.function == f"function of\t{row.id}" and row.shard.startswith("shard_0000")
        assert row.description == "a protein"
    vocab = build_vocab(N_BLOBS, 100)
    text = "".join(path.read_text() for path in sorted((tmp_path / "interleaved.jsonl").glob("*.jsonl")))
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["id"] for line in lines] == expected_order
    for line, row in zip(lines, table.itertuples()):
        assert line["tokens"][0::2] == list(row.sequence)
        assert line["tokens"][1::2] == [vocab["structure_tokens"][t] for t in row.structure_tokens]
        assert line["ids"] == [vocab["token_to_id"][t] for t in line["tokens"]] and min(line["ids"]) >= 100
    # byte for byte what json.dumps writes (the lines are assembled from per-token pieces)
    assert text == "".join(json.dumps({"id": row.id, "tokens": interleave(row.sequence, row.structure_tokens, vocab)[0],
                                       "ids": interleave(row.sequence, row.structure_tokens, vocab)[1],
                                       "function": row.function}) + "\n" for row in table.itertuples())
    counts = [json.loads(path.read_text()) for path in sorted((tmp_path / "token_counts").glob("*.json"))]
    all_labels = np.concatenate([proteins[i][2] for i in expected_order])
    usage = np.sum([c["usage_counts"] for c in counts], axis=0)
    assert usage.tolist() == np.bincount(all_labels, minlength=N_BLOBS).tolist()
    assert counts[0]["examples"][0]["id"] == expected_order[0]


def test_interleaved_lines_escape_like_json_dumps(tokenized, tmp_path):
    """Ids and function texts with quotes, backslashes and non-ASCII letters are written as json.dumps does."""
    tsv = tokenized["tsvs"][0]
    proteins = read_shard(tsv)
    odd = [Protein(p.id, p.sequence, p.sequence_hash, p.aliases, "", f'fonction "é" \\ {i}\n\u2028')
           for i, p in enumerate(proteins)]
    write_shard(tsv, odd)
    write_all_shard_outputs(tokenized, tmp_path)
    lines = (tmp_path / f"interleaved.jsonl/{tsv.stem}.jsonl").read_text().splitlines()
    assert [json.loads(line)["function"] for line in lines] == [p.function for p in odd]
    assert all(json.dumps(json.loads(line)) == line for line in lines)


def test_llm_outputs_reject_a_length_mismatch(tokenized, tmp_path):
    tsv = tokenized["tsvs"][0]
    first, *rest = read_shard(tsv)
    write_shard(tsv, [prepared_protein(first.id, first.sequence + "A", first.sequence_hash), *rest])
    with pytest.raises(ValueError, match=f"protein {first.id} has .* tokens"):
        write_all_shard_outputs(tokenized, tmp_path)
    written = [tmp_path / name for name in ("tokens.parquet", "interleaved.jsonl", "token_counts")]
    assert not [path for folder in written if folder.exists() for path in folder.iterdir()]  # no part, no temporary


@pytest.mark.parametrize("damage", ["flipped bit", "token out of range"])
def test_llm_outputs_fail_on_a_damaged_tokens_file_naming_it(damage, tokenized, tmp_path):
    """What `--forcerun llm_outputs` meets if a tokens file is damaged in a way the workflow's
    start-up check cannot see (bit rot that changes no file metadata), or was written with a token
    outside the codebook: an error naming the file and the problem, and no output."""
    path = tokenized["tokens"][1]
    if damage == "flipped bit":
        flip_bit_in_dataset(path, "tokens")
        problem = "dataset tokens fails its checksum"
    else:
        with h5py.File(path, "a") as h5:
            h5["tokens"][3] = N_BLOBS
        problem = f"token {N_BLOBS} of protein .* is out of range for a codebook of k={N_BLOBS}"
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} is incomplete or corrupt: {problem}"):
        write_shard_outputs(tokenized["tsvs"][1], path, tokenized["codebook"], OutputOptions(),
                            out_parquet=tmp_path / "t.parquet", out_jsonl=tmp_path / "i.jsonl",
                            out_counts=tmp_path / "c.json")
    assert not any(tmp_path.glob("t.parquet")) and not any(tmp_path.glob("i.jsonl"))
    assert not any(tmp_path.glob("c.json"))


def test_tokens_file_layout(tokenized):
    with h5py.File(tokenized["tokens"][0]) as h5:
        assert set(h5) == {"tokens", "offsets", "ids", "sequence_hash"}
        assert h5["tokens"].dtype == np.uint16 and h5["offsets"].dtype == np.int64
        assert h5.attrs["k"] == N_BLOBS
