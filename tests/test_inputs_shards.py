"""Shard tables: lossless round trip of free text, and clear errors for damaged files."""

from __future__ import annotations

import pytest

from structure_tokens.formats.shards import Protein, read_shard, write_shard
from structure_tokens.inputs.validate import sequence_hash
from structure_tokens.formats.shards import iter_shard, shard_name


def test_free_text_round_trips(tmp_path):
    proteins = [
        Protein("P1", "MKV", sequence_hash("MKV"), ("a", "b:c"), 'name "quoted"', "line one\nline\ttwo", "Why?\r\n"),
        Protein("P2", "MAA", sequence_hash("MAA")),
    ]
    assert write_shard(tmp_path / "shard_00000.tsv", proteins) == 2
    assert read_shard(tmp_path / "shard_00000.tsv") == proteins
    assert proteins[0].length == 3 and shard_name(12) == "shard_00012"


@pytest.mark.parametrize("text, message", [
    ("id\tsequence\nP1\tMKV\n", "not a shard table"),
    ("id\tsequence_hash\tlength\tsequence\taliases\tdescription\tfunction\tinstruction\nP1\th\t4\tMKV\t\t\t\t\n",
     r"row 2 \(P1\) says length 4 but its sequence has 3 residues"),
    ("id\tsequence_hash\tlength\tsequence\taliases\tdescription\tfunction\tinstruction\nP1\th\t3\tMKV\n",
     "row 2 has 4 columns, expected 8"),
])
def test_damaged_shard_is_an_error_naming_file_and_row(text, message, tmp_path):
    shard = tmp_path / "shard_00003.tsv"
    shard.write_text(text)
    with pytest.raises(ValueError, match=rf"shard_00003\.tsv: {message}"):
        list(iter_shard(shard))
