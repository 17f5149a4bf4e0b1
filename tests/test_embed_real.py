"""embed_shard on real Swiss-Prot sequences (tests/data/real): the file matches the shard TSV."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from Bio import SeqIO

from structure_tokens.embed.embedder import embed_shard
from structure_tokens.embed.options import WINDOW, EmbedOptions
from structure_tokens.formats.embeddings import EmbeddingShard, is_complete
from structure_tokens.formats.shards import Protein, read_shard, write_shard
from structure_tokens.inputs.validate import sequence_hash

from conftest import REAL_DATA


@pytest.fixture(scope="module")
def real_proteins() -> list[Protein]:
    """Every 4th Swiss-Prot protein plus the longest one (3148 residues: windowed)."""
    with gzip.open(REAL_DATA / "sequences" / "swissprot_function_subset.fasta.gz", "rt") as handle:
        records = list(SeqIO.parse(handle, "fasta"))
    longest = max(range(len(records)), key=lambda i: len(records[i]))
    chosen = [records[i] for i in sorted(set(range(0, len(records), 4)) | {longest})]
    proteins = [Protein(r.id.split("|")[1], str(r.seq), sequence_hash(str(r.seq))) for r in chosen]
    assert max(p.length for p in proteins) > 3 * WINDOW
    return proteins


def test_real_shard_is_complete_and_matches_its_tsv(tiny_checkpoint, real_proteins, tmp_path):
    shard = tmp_path / "shard_00000.tsv"
    write_shard(shard, real_proteins)
    out = tmp_path / "shard_00000.h5"
    stats = embed_shard(shard, tiny_checkpoint, out, EmbedOptions(token_budget=4096))
    expected = {p.id: p for p in read_shard(shard)}
    assert is_complete(out) and stats["n_proteins"] == stats["embedded_now"] == len(expected)
    assert stats["n_residues"] == sum(p.length for p in expected.values()) and stats["skipped_ids"] == []
    with EmbeddingShard(out) as embeddings:
        assert sorted(embeddings.ids) == sorted(expected) and embeddings.dim == 32
        for i, protein_id in enumerate(embeddings.ids):
            protein = expected[protein_id]
            assert embeddings.sequence_hashes[i] == protein.sequence_hash
            assert np.diff(embeddings.offsets)[i] == protein.length
        assert np.isfinite(embeddings.rows(np.arange(embeddings.n_residues))).all()
