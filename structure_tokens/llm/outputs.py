"""The `llm_outputs` stage: ``tokens.parquet``, ``vocab.json`` and ``interleaved.jsonl`` from every shard."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from structure_tokens.codebook.metrics import unique_tokens_per_protein
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import Protein, read_shard
from structure_tokens.formats.tokens import TokenShard
from structure_tokens.formats.vocab import build_vocab, interleave, write_vocab
from structure_tokens.llm.options import OutputOptions

PARQUET_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("aliases", pa.list_(pa.string())),
    ("sequence", pa.string()),
    ("length", pa.int64()),
    ("structure_tokens", pa.list_(pa.uint16())),
    ("function", pa.string()),
    ("instruction", pa.string()),
    ("n_unique_tokens", pa.int64()),
    ("shard", pa.string()),
])


def check_pairing(shard_tsv: str | os.PathLike, token_h5: str | os.PathLike) -> None:
    """Shard TSVs and token files must come in the same shard order (same ``shard_NNNNN`` stem)."""
    if Path(shard_tsv).stem != Path(token_h5).stem:
        raise ValueError(f"shard list and token list are not aligned: {shard_tsv} paired with {token_h5}")


def aligned_proteins(shard_tsv: str | os.PathLike, token_h5: str | os.PathLike, codebook: Codebook,
                     codebook_npz: str | os.PathLike) -> list[tuple[Protein, np.ndarray, int]]:
    """``(protein, tokens, n_unique_tokens)`` for every protein of a shard TSV, in input order.

    Fails unless the token file was made with ``codebook`` and holds exactly the TSV's proteins,
    each with one token per residue and the same sequence hash.
    """
    proteins = read_shard(shard_tsv)
    with TokenShard(token_h5) as tokens:
        if tokens.codebook_sha256 != codebook.sha256:
            raise ValueError(f"{token_h5} was made with codebook sha256 {tokens.codebook_sha256}, "
                             f"not with {codebook_npz} ({codebook.sha256})")
        index = {protein_id: i for i, protein_id in enumerate(tokens.ids)}
        missing = [p.id for p in proteins if p.id not in index]
        if missing or len(index) != len(proteins):
            raise ValueError(f"{token_h5} has {len(index)} proteins, {shard_tsv} has {len(proteins)}; "
                             f"proteins without tokens: {missing[:5]}")
        unique = unique_tokens_per_protein(tokens.tokens, tokens.offsets, tokens.k)
        aligned = []
        for protein in proteins:
            i = index[protein.id]
            protein_tokens = tokens.protein(i)
            if len(protein_tokens) != len(protein.sequence) or tokens.sequence_hashes[i] != protein.sequence_hash:
                raise ValueError(
                    f"{token_h5}: protein {protein.id} has {len(protein_tokens)} tokens (sequence hash "
                    f"{tokens.sequence_hashes[i]}) but {shard_tsv} has a sequence of length "
                    f"{len(protein.sequence)} (hash {protein.sequence_hash})")
            aligned.append((protein, protein_tokens, int(unique[i])))
    return aligned


def parquet_table(shard: str, aligned: list[tuple[Protein, np.ndarray, int]]) -> pa.Table:
    """The ``tokens.parquet`` rows of one shard."""
    return pa.table({
        "id": [p.id for p, _, _ in aligned],
        "aliases": [list(p.aliases) for p, _, _ in aligned],
        "sequence": [p.sequence for p, _, _ in aligned],
        "length": [len(p.sequence) for p, _, _ in aligned],
        "structure_tokens": [tokens for _, tokens, _ in aligned],
        "function": [p.function for p, _, _ in aligned],
        "instruction": [p.instruction for p, _, _ in aligned],
        "n_unique_tokens": [n for _, _, n in aligned],
        "shard": [shard] * len(aligned),
    }, schema=PARQUET_SCHEMA)


def write_llm_outputs(
    shard_tsvs: Sequence[str | os.PathLike],
    token_h5s: Sequence[str | os.PathLike],
    codebook_npz: str | os.PathLike,
    options: OutputOptions = OutputOptions(),
    *,
    out_parquet: str | os.PathLike,
    out_vocab: str | os.PathLike,
    out_jsonl: str | os.PathLike,
) -> dict[str, Any]:
    """Stream every shard (shard order, proteins in input order) into the three LLM outputs.

    ``tokens.parquet`` is written one row group per shard, ``interleaved.jsonl`` one line per
    protein; memory holds one shard at a time. All three files appear only on success.
    """
    if len(shard_tsvs) != len(token_h5s):
        raise ValueError(f"{len(shard_tsvs)} shard TSVs but {len(token_h5s)} token files")
    codebook = Codebook.load(codebook_npz)
    vocab = build_vocab(codebook.k, options.vocab_offset)
    n_proteins = n_residues = 0
    with ExitStack() as stack:
        parquet_tmp = stack.enter_context(atomic_output(out_parquet))
        jsonl_tmp = stack.enter_context(atomic_output(out_jsonl))
        writer = stack.enter_context(pq.ParquetWriter(parquet_tmp, PARQUET_SCHEMA))
        jsonl = stack.enter_context(open(jsonl_tmp, "w"))
        for shard_tsv, token_h5 in zip(shard_tsvs, token_h5s):
            check_pairing(shard_tsv, token_h5)
            aligned = aligned_proteins(shard_tsv, token_h5, codebook, codebook_npz)
            writer.write_table(parquet_table(Path(shard_tsv).stem, aligned))
            for protein, tokens, _ in aligned:
                strings, ids = interleave(protein.sequence, tokens, vocab)
                jsonl.write(json.dumps({"id": protein.id, "tokens": strings, "ids": ids,
                                        "function": protein.function}) + "\n")
            n_proteins += len(aligned)
            n_residues += sum(len(tokens) for _, tokens, _ in aligned)
    write_vocab(out_vocab, codebook.k, options.vocab_offset, codebook.sha256)
    return {"n_shards": len(shard_tsvs), "n_proteins": n_proteins, "n_residues": n_residues,
            "vocab_size": len(vocab["token_to_id"]), "codebook_sha256": codebook.sha256}
