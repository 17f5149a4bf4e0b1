"""Library API: load a model and codebook once, tokenize new proteins, render and decode streams.

    from structure_tokens.api import StructureTokenizer, decode

    tokenizer = StructureTokenizer.from_files("esm2.pt", "codebook_K512.npz")
    [protein] = tokenizer.tokenize(["MKTAYIAKQR"])
    protein.structure_tokens            # uint16, one token per residue
    text = tokenizer.render(protein)    # "<protein><aa:M><S012>...</protein>"
    decode(text, tokenizer.vocab)       # "MKTAYIAKQR"

No Snakemake needed. Sequences are cleaned like the pipeline's inputs
(:func:`structure_tokens.inputs.validate.clean_sequence`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

import numpy as np
import torch

from structure_tokens.codebook.assign import assign
from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.embedder import Embedder
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import Protein
from structure_tokens.formats.vocab import build_vocab, decode, interleave, parse_stream, render_protein
from structure_tokens.inputs.readers import read_fasta
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import clean_sequence, sequence_hash

ProteinLike = Union[str, tuple[str, str], InputRecord, Protein]


@dataclass(frozen=True)
class TokenizedProtein:
    """One protein and its per-residue structure tokens (codebook indices)."""

    id: str
    sequence: str
    structure_tokens: np.ndarray  # uint16 (len(sequence),)


def as_protein(item: ProteinLike, position: int, nonstandard: str = "map") -> Protein:
    """A cleaned :class:`Protein` from a sequence, ``(id, sequence)``, input record or protein.

    Bare sequences are named ``seq{position}``.
    """
    if isinstance(item, Protein):
        protein_id, raw = item.id, item.sequence
    elif isinstance(item, InputRecord):
        protein_id, raw = item.input_id, item.sequence
    elif isinstance(item, str):
        protein_id, raw = f"seq{position}", item
    else:
        protein_id, raw = item
    cleaned = clean_sequence(raw, nonstandard)
    if cleaned.sequence is None:
        raise ValueError(f"protein {protein_id} (input {position}): {cleaned.reason}")
    return Protein(protein_id, cleaned.sequence, sequence_hash(cleaned.sequence))


class StructureTokenizer:
    """An ESM-2 model and a k-means codebook, loaded once, turning sequences into structure tokens."""

    def __init__(self, model: torch.nn.Module, alphabet: Any, model_name: str, codebook: Codebook,
                 options: EmbedOptions = EmbedOptions(), vocab_offset: int = 0):
        self.embedder = Embedder(model, alphabet, options)
        layer = self.embedder.layer
        if (model_name, layer, model.embed_dim) != (codebook.model_name, codebook.layer, codebook.dim):
            raise ValueError(f"model {model_name} (layer {layer}, dim {model.embed_dim}) does not match the "
                             f"codebook (model {codebook.model_name}, layer {codebook.layer}, dim {codebook.dim})")
        self.model_name = model_name
        self.codebook = codebook
        self.vocab = {**build_vocab(codebook.k, vocab_offset), "codebook_sha256": codebook.sha256}

    @classmethod
    def from_files(cls, checkpoint: str | os.PathLike, codebook_npz: str | os.PathLike,
                   options: EmbedOptions = EmbedOptions(), vocab_offset: int = 0) -> "StructureTokenizer":
        """Load a fair-esm ``.pt`` checkpoint and a ``codebook_K*.npz``; fail if they do not belong together."""
        model, alphabet, model_name = load_esm2(checkpoint)
        try:
            return cls(model, alphabet, model_name, Codebook.load(codebook_npz), options, vocab_offset)
        except ValueError as error:
            raise ValueError(f"{checkpoint} and {codebook_npz}: {error}") from None

    def tokenize(self, items: Iterable[ProteinLike], nonstandard: str = "map",
                 progress: Callable[[int, int], None] | None = None) -> list[TokenizedProtein]:
        """Structure tokens of every protein, in input order.

        ``progress(residues_done, residues_total)`` is called after each finished protein (e.g. to
        drive a progress bar). Fails, naming the protein, if a sequence is invalid or the
        long-sequence policy skips it.
        """
        proteins = [as_protein(item, position, nonstandard) for position, item in enumerate(items)]
        tokens: list[np.ndarray | None] = [None] * len(proteins)
        total, done = sum(len(p.sequence) for p in proteins), 0
        for index, embedding in self.embedder.embed(proteins):
            tokens[index] = assign(embedding, self.codebook.centroids)
            done += len(proteins[index].sequence)
            if progress is not None:
                progress(done, total)
        skipped = [p.id for p, t in zip(proteins, tokens) if t is None]
        if skipped:
            raise ValueError(f"proteins {skipped[:5]} were not embedded (long_policy "
                             f"{self.embedder.options.long_policy!r}); use 'windows' or 'truncate'")
        return [TokenizedProtein(p.id, p.sequence, t) for p, t in zip(proteins, tokens)]

    def tokenize_fasta(self, path: str | os.PathLike, nonstandard: str = "map",
                       progress: Callable[[int, int], None] | None = None) -> list[TokenizedProtein]:
        """:meth:`tokenize` every record of a (optionally gzipped) FASTA file."""
        try:
            return self.tokenize(read_fasta(path), nonstandard, progress)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def render(self, protein: TokenizedProtein, fmt: str = "interleaved") -> str:
        """The protein as added-token text (``interleaved``, ``combined`` or ``blocks``)."""
        return render_protein(protein.sequence, protein.structure_tokens, self.vocab, fmt)

    def interleave(self, protein: TokenizedProtein) -> tuple[list[str], list[int]]:
        """``[aa1, S(t1), aa2, S(t2), ...]`` as ``vocab.json`` strings and ids."""
        return interleave(protein.sequence, protein.structure_tokens, self.vocab)


__all__ = ["StructureTokenizer", "TokenizedProtein", "as_protein", "decode", "parse_stream"]
