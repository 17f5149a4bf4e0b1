"""The `llm_outputs` stage, one job per shard: the shard's part of the token table
(``tokens.parquet/shard_NNNNN.parquet``), of the interleaved stream
(``interleaved.jsonl/shard_NNNNN.jsonl``) and its token counts (``token_counts/shard_NNNNN.json``,
from which the codebook summary and the report are drawn without reading the tokens again).

``tokens.parquet`` and ``interleaved.jsonl`` are folders of these parts, one per shard in shard
order: ``pd.read_parquet("tokens.parquet")`` reads the whole table, ``cat interleaved.jsonl/*.jsonl``
gives the whole stream. ``vocab.json`` depends only on the codebook (:func:`write_vocab`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from structure_tokens.codebook.metrics import shard_token_counts, unique_tokens_per_protein
from structure_tokens.formats.atomic import atomic_outputs, json_text
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import Protein, read_shard
from structure_tokens.formats.tokens import TokenShard
from structure_tokens.formats.vocab import AMINO_ACIDS, amino_acid_indices, build_vocab
from structure_tokens.llm.options import OutputOptions

PARQUET_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("aliases", pa.list_(pa.string())),
    ("sequence", pa.string()),
    ("length", pa.int64()),
    ("structure_tokens", pa.list_(pa.uint16())),
    ("description", pa.string()),
    ("function", pa.string()),
    ("instruction", pa.string()),
    ("n_unique_tokens", pa.int64()),
    ("shard", pa.string()),
])


@dataclass(frozen=True)
class AlignedShard:
    """The proteins of a shard TSV in input order, with their tokens in the same order."""

    proteins: list[Protein]
    tokens: np.ndarray  # uint16, every protein's tokens one after the other
    offsets: np.ndarray  # int64, len(proteins) + 1
    n_unique_tokens: np.ndarray  # distinct tokens of each protein

    def protein_tokens(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]


def check_pairing(shard_tsv: str | os.PathLike, token_h5: str | os.PathLike) -> None:
    """A shard TSV and its token file must be the same shard (same ``shard_NNNNN`` stem)."""
    if Path(shard_tsv).stem != Path(token_h5).stem:
        raise ValueError(f"shard table and token file are not the same shard: {shard_tsv} paired with {token_h5}")


def aligned_shard(shard_tsv: str | os.PathLike, token_h5: str | os.PathLike, codebook: Codebook,
                  codebook_npz: str | os.PathLike) -> AlignedShard:
    """Every protein of a shard TSV, in input order, with its tokens.

    Fails unless the token file was made with ``codebook`` and holds exactly the TSV's proteins,
    each with one token per residue and the same sequence hash.
    """
    check_pairing(shard_tsv, token_h5)
    proteins = read_shard(shard_tsv)
    with TokenShard(token_h5) as shard:
        if shard.codebook_sha256 != codebook.sha256:
            raise ValueError(f"{token_h5} was made with codebook sha256 {shard.codebook_sha256}, "
                             f"not with {codebook_npz} ({codebook.sha256})")
        index = {protein_id: i for i, protein_id in enumerate(shard.ids)}
        missing = [p.id for p in proteins if p.id not in index]
        if missing or len(index) != len(proteins):
            raise ValueError(f"{token_h5} has {len(index)} proteins, {shard_tsv} has {len(proteins)}; "
                             f"proteins without tokens: {missing[:5]}")
        order = np.array([index[p.id] for p in proteins], dtype=np.int64)
        lengths = np.diff(shard.offsets)[order]
        for protein, i, length in zip(proteins, order, lengths):
            if length != len(protein.sequence) or shard.sequence_hashes[i] != protein.sequence_hash:
                raise ValueError(
                    f"{token_h5}: protein {protein.id} has {length} tokens (sequence hash "
                    f"{shard.sequence_hashes[i]}) but {shard_tsv} has a sequence of length "
                    f"{len(protein.sequence)} (hash {protein.sequence_hash})")
        if np.array_equal(order, np.arange(len(order))):  # the token file keeps the input order (as written)
            tokens, offsets = shard.tokens, shard.offsets
        else:
            tokens = np.concatenate([shard.protein(i) for i in order] or [np.zeros(0, dtype=np.uint16)])
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return AlignedShard(proteins, tokens, offsets, unique_tokens_per_protein(tokens, offsets, codebook.k))


def parquet_table(shard: str, aligned: AlignedShard) -> pa.Table:
    """The token-table rows of one shard."""
    proteins = aligned.proteins
    structure_tokens = pa.ListArray.from_arrays(pa.array(aligned.offsets, pa.int32()),
                                                pa.array(aligned.tokens, pa.uint16()))
    return pa.table({
        "id": [p.id for p in proteins],
        "aliases": [list(p.aliases) for p in proteins],
        "sequence": [p.sequence for p in proteins],
        "length": np.diff(aligned.offsets),
        "structure_tokens": structure_tokens,
        "description": [p.description for p in proteins],
        "function": [p.function for p in proteins],
        "instruction": [p.instruction for p in proteins],
        "n_unique_tokens": aligned.n_unique_tokens,
        "shard": [shard] * len(proteins),
    }, schema=PARQUET_SCHEMA)


def interleaved_lines(aligned: AlignedShard, vocab: dict[str, Any], where: str) -> Iterator[str]:
    """One ``interleaved.jsonl`` line per protein: ``{"id", "tokens", "ids", "function"}`` exactly as
    ``json.dumps`` writes it, built from per-token JSON pieces instead of a list per residue."""
    names = list(AMINO_ACIDS) + vocab["structure_tokens"]  # position: amino acid i, then 20 + token
    name_pieces = np.array([json.dumps(name) for name in names], dtype=object)
    id_pieces = np.array([str(vocab["token_to_id"][name]) for name in names], dtype=object)
    if aligned.tokens.size and int(aligned.tokens.max()) >= len(vocab["structure_tokens"]):
        raise ValueError(f"{where}: token {int(aligned.tokens.max())} is outside the vocabulary")
    for i, protein in enumerate(aligned.proteins):
        try:
            residues = amino_acid_indices(protein.sequence)
        except ValueError as error:
            raise ValueError(f"{where}: protein {protein.id}: {error}") from None
        positions = np.empty(2 * len(residues), dtype=np.int64)
        positions[0::2] = residues
        positions[1::2] = aligned.protein_tokens(i).astype(np.int64) + len(AMINO_ACIDS)
        yield (f'{{"id": {json.dumps(protein.id)}, "tokens": [{", ".join(name_pieces[positions].tolist())}], '
               f'"ids": [{", ".join(id_pieces[positions].tolist())}], "function": {json.dumps(protein.function)}}}\n')


def write_shard_outputs(shard_tsv: str | os.PathLike, token_h5: str | os.PathLike, codebook_npz: str | os.PathLike,
                        options: OutputOptions = OutputOptions(), *, out_parquet: str | os.PathLike,
                        out_jsonl: str | os.PathLike, out_counts: str | os.PathLike) -> dict[str, Any]:
    """One shard's token-table part, interleaved-stream part and token counts; the three files
    appear together, only on success. Returns the counts (without the per-code lists)."""
    codebook = Codebook.load(codebook_npz)
    vocab = build_vocab(codebook.k, options.vocab_offset)
    aligned = aligned_shard(shard_tsv, token_h5, codebook, codebook_npz)
    shard = Path(shard_tsv).stem
    counts = shard_token_counts(shard, aligned.tokens, aligned.offsets, aligned.n_unique_tokens, codebook,
                                [p.id for p in aligned.proteins])
    with atomic_outputs(out_parquet, out_jsonl, out_counts) as (parquet_tmp, jsonl_tmp, counts_tmp):
        pq.write_table(parquet_table(shard, aligned), parquet_tmp)
        with open(jsonl_tmp, "w", encoding="utf-8") as jsonl:
            jsonl.writelines(interleaved_lines(aligned, vocab, str(shard_tsv)))
        counts_tmp.write_text(json_text(counts, indent=None))
    return {key: value for key, value in counts.items() if not isinstance(value, list)}
