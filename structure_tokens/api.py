"""Library API: load a model and codebook once, tokenize new proteins, render and decode streams.

    from structure_tokens.api import StructureTokenizer, decode

    tokenizer = StructureTokenizer.from_files("esm2.pt", "codebook_K512.npz")
    [protein] = tokenizer.tokenize(["MKTAYIAKQR"])
    protein.structure_tokens            # uint16, one token per residue
    text = tokenizer.render(protein)    # "<protein><aa:M><S012>...</protein>"
    decode(text, tokenizer.vocab)       # "MKTAYIAKQR"

No Snakemake needed. Records are judged by the rules of the pipeline's `prepare`
(:func:`structure_tokens.inputs.validate.judge`), with the embedder's ``long_policy``:
:meth:`StructureTokenizer.tokenize` fails on the first record `prepare` would skip,
:meth:`StructureTokenizer.tokenize_records` tokenizes the others and lists it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Union

import numpy as np

from structure_tokens.codebook.assign import assign
from structure_tokens.embed.checkpoint import LoadedESM2, load_esm2
from structure_tokens.embed.embedder import Embedder
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import Protein
from structure_tokens.formats.vocab import build_vocab, decode, interleave, parse_stream, render_protein
from structure_tokens.inputs.readers import read_fasta
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import RecordRules, Verdict, judge_records

ProteinLike = Union[str, tuple[str, str], InputRecord, Protein]


@dataclass(frozen=True)
class TokenizedProtein:
    """One protein and its per-residue structure tokens (codebook indices)."""

    id: str
    sequence: str
    structure_tokens: np.ndarray  # uint16 (len(sequence),)


@dataclass(frozen=True)
class Tokenized:
    """What :meth:`StructureTokenizer.tokenize_records` made: tokens of the kept records, in input
    order, and the skipped records with the verdict that says why."""

    proteins: list[TokenizedProtein]
    skipped: list[tuple[InputRecord, Verdict]]


def as_record(item: ProteinLike, position: int) -> InputRecord:
    """An :class:`InputRecord` from a sequence, ``(id, sequence)``, input record or protein.

    Bare sequences are named ``seq{position}``.
    """
    if isinstance(item, InputRecord):
        return item
    if isinstance(item, Protein):
        return InputRecord("input", position, item.id, item.sequence, item.description, item.function,
                           item.instruction)
    if isinstance(item, str):
        return InputRecord("input", position, f"seq{position}", item)
    protein_id, sequence = item
    return InputRecord("input", position, protein_id, sequence)


class StructureTokenizer:
    """An ESM-2 model and a k-means codebook, loaded once, turning sequences into structure tokens."""

    def __init__(self, model: LoadedESM2, codebook: Codebook, options: EmbedOptions = EmbedOptions(),
                 vocab_offset: int = 0):
        self.embedder = Embedder(model.model, model.alphabet, options)
        self.provenance = model.provenance(self.embedder.layer)
        self.provenance.require_match(codebook.provenance, "the model", "the codebook")
        self.codebook = codebook
        self.vocab = {**build_vocab(codebook.k, vocab_offset), "codebook_sha256": codebook.sha256}

    @classmethod
    def from_files(cls, checkpoint: str | os.PathLike, codebook_npz: str | os.PathLike,
                   options: EmbedOptions = EmbedOptions(), vocab_offset: int = 0) -> "StructureTokenizer":
        """Load a fair-esm ``.pt`` checkpoint and a ``codebook_K*.npz``; fail if they do not belong together."""
        model = load_esm2(checkpoint)
        try:
            return cls(model, Codebook.load(codebook_npz), options, vocab_offset)
        except ValueError as error:
            raise ValueError(f"{checkpoint} and {codebook_npz}: {error}") from None

    @property
    def model_name(self) -> str:
        """The checkpoint's name (its file name without ``.pt``)."""
        return self.provenance.model_name

    def rules(self, nonstandard: str = "map") -> RecordRules:
        """`prepare`'s rules with the default length limits and this tokenizer's ``long_policy``."""
        return RecordRules(nonstandard_residues=nonstandard, long_policy=self.embedder.options.long_policy)

    def tokenize(self, items: Iterable[ProteinLike], nonstandard: str = "map",
                 progress: Callable[[int, int], None] | None = None) -> list[TokenizedProtein]:
        """Structure tokens of every protein, in input order.

        ``progress(residues_done, residues_total)`` is called after each finished protein (e.g. to
        drive a progress bar). Fails, naming the protein, on the first one `prepare` would skip (an
        invalid sequence or id, a repeated id, ``long_policy: skip``); ``long_policy: truncate``
        returns the residues that were embedded.
        """
        judged = list(judge_records((as_record(item, i) for i, item in enumerate(items)), self.rules(nonstandard)))
        for position, (record, verdict) in enumerate(judged):
            if not verdict.kept:
                raise ValueError(f"protein {record.input_id} (input {position}): {verdict.reason}")
        return self._tokenize(judged, progress)

    def tokenize_records(self, records: Iterable[InputRecord], nonstandard: str = "map",
                         progress: Callable[[int, int], None] | None = None) -> Tokenized:
        """Tokenize every record `prepare` would keep; return the others with their verdicts.

        Identical sequences are embedded once. See :meth:`tokenize` for ``progress`` and long proteins.
        """
        kept, skipped = [], []
        for record, verdict in judge_records(records, self.rules(nonstandard)):
            (kept if verdict.kept else skipped).append((record, verdict))
        return Tokenized(self._tokenize(kept, progress), skipped)

    def tokenize_fasta(self, path: str | os.PathLike, nonstandard: str = "map",
                       progress: Callable[[int, int], None] | None = None) -> list[TokenizedProtein]:
        """:meth:`tokenize` every record of a (optionally gzipped) FASTA file."""
        try:
            return self.tokenize(read_fasta(path), nonstandard, progress)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def _tokenize(self, kept: list[tuple[InputRecord, Verdict]],
                  progress: Callable[[int, int], None] | None) -> list[TokenizedProtein]:
        """Tokens of kept records, each distinct sequence embedded once."""
        by_digest: dict[str, Protein] = {}
        for record, verdict in kept:
            by_digest.setdefault(verdict.digest, Protein(record.input_id, verdict.sequence, verdict.digest))
        distinct = list(by_digest.values())
        tokens: dict[str, np.ndarray] = {}
        total, done = sum(p.length for p in distinct), 0
        for index, embedding in self.embedder.embed(distinct):
            tokens[distinct[index].sequence_hash] = assign(embedding, self.codebook.centroids)
            done += distinct[index].length
            if progress is not None:
                progress(done, total)
        return [TokenizedProtein(r.input_id, v.sequence, tokens[v.digest]) for r, v in kept]

    def render(self, protein: TokenizedProtein, fmt: str = "interleaved") -> str:
        """The protein as added-token text (``interleaved``, ``combined`` or ``blocks``)."""
        return render_protein(protein.sequence, protein.structure_tokens, self.vocab, fmt)

    def interleave(self, protein: TokenizedProtein) -> tuple[list[str], list[int]]:
        """``[aa1, S(t1), aa2, S(t2), ...]`` as ``vocab.json`` strings and ids."""
        return interleave(protein.sequence, protein.structure_tokens, self.vocab)


__all__ = ["StructureTokenizer", "Tokenized", "TokenizedProtein", "as_record", "decode", "parse_stream"]
