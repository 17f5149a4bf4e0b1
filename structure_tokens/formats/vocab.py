"""The protein vocabulary and every way a protein is written as LLM tokens: the one place that
knows the token strings, the three render formats and how to parse them back.

``vocab.json`` (``build_vocab``): the 20 amino acids, the structure tokens ``S000`` .. ``S{K-1}``
and the special tokens, with ids from ``vocab_offset`` on. In an LLM tokenizer the vocabulary
tokens get distinct *added-token strings*, so that they never collide with ordinary text:

=====================  ============================  ==================
vocabulary token       added-token string            example
=====================  ============================  ==================
amino acid ``M``       ``<aa:M>``                    ``<aa:M>``
structure ``S012``     ``<S012>``                    ``<S012>``
``<protein>``          ``<protein>`` (unchanged)     ``<protein>``
``</protein>``         ``</protein>`` (unchanged)    ``</protein>``
``<pad>``              the tokenizer's pad token     (``<pad>`` if none)
combined (optional)    ``<M|S012>``                  SaProt-style
=====================  ============================  ==================

A protein renders (:func:`render_protein`) in one of :data:`FORMATS`; :func:`parse_stream` reads
any of them back, as well as ``interleaved.jsonl`` token strings and ids.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from structure_tokens.formats.atomic import write_json

VOCAB_FORMAT_VERSION = 1
AMINO_ACIDS = tuple("ACDEFGHIKLMNPQRSTVWY")
AMINO_ACID_INDEX = {aa: i for i, aa in enumerate(AMINO_ACIDS)}
AMINO_ACID_CODES = np.zeros(256, dtype=np.uint16)  # byte of a standard amino-acid letter -> its index
AMINO_ACID_CODES[np.frombuffer("".join(AMINO_ACIDS).encode("ascii"), dtype=np.uint8)] = np.arange(len(AMINO_ACIDS))
SPECIAL_TOKENS = ("<protein>", "</protein>", "<pad>")
PAD = "<pad>"
# One added-token string of any kind: <aa:M>, <S012>, <M|S012>, <protein>, </protein>.
ADDED_TOKEN_PATTERN = re.compile(r"<aa:[A-Z]>|<S\d+>|<[A-Z]\|S\d+>|</?protein>")
TOKEN_START = re.compile(r"<(?:aa:|S\d|[A-Z]\||/?protein)[^<>\s]*>?")  # what begins like a protein token
FORMATS = ("interleaved", "combined", "blocks")


def structure_token_names(k: int) -> list[str]:
    """``S000`` .. ``S{k-1}``, zero-padded to at least 3 digits (more when k-1 needs them)."""
    width = max(3, len(str(k - 1)))
    return [f"S{i:0{width}d}" for i in range(k)]


def build_vocab(k: int, vocab_offset: int = 0) -> dict[str, Any]:
    """Amino acids, then structure tokens, then special tokens, with ids from ``vocab_offset`` on."""
    if k < 1 or vocab_offset < 0:
        raise ValueError(f"need k >= 1 and vocab_offset >= 0, got k={k}, vocab_offset={vocab_offset}")
    amino_acids, structure, special = list(AMINO_ACIDS), structure_token_names(k), list(SPECIAL_TOKENS)
    tokens = amino_acids + structure + special
    return {
        "vocab_offset": vocab_offset,
        "k": k,
        "amino_acids": amino_acids,
        "structure_tokens": structure,
        "special_tokens": special,
        "token_to_id": {token: vocab_offset + i for i, token in enumerate(tokens)},
    }


def write_vocab(path: str | os.PathLike, k: int, vocab_offset: int, codebook_sha256: str) -> dict[str, Any]:
    """Write ``vocab.json`` atomically and return its content."""
    vocab = {"format_version": VOCAB_FORMAT_VERSION, **build_vocab(k, vocab_offset),
             "codebook_sha256": codebook_sha256}
    write_json(path, vocab)
    return vocab


def amino_acid_indices(sequence: str) -> np.ndarray:
    """Index of every residue in :data:`AMINO_ACIDS`, as uint16 (fails on any other letter)."""
    unknown = sorted(set(sequence) - AMINO_ACID_INDEX.keys())
    if unknown:
        raise ValueError(f"letters {unknown} are not standard amino acids")
    return AMINO_ACID_CODES[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def check_protein(sequence: str, tokens: Sequence[int], vocab: dict[str, Any]) -> None:
    """Fail unless there is one structure token per residue and every residue is in the vocabulary."""
    if len(sequence) != len(tokens):
        raise ValueError(f"sequence of length {len(sequence)} has {len(tokens)} structure tokens")
    unknown = set(sequence) - set(vocab["amino_acids"])
    if unknown:
        raise ValueError(f"residues {sorted(unknown)} are not among the vocabulary's amino acids")


def interleave(sequence: str, tokens: Sequence[int], vocab: dict[str, Any]) -> tuple[list[str], list[int]]:
    """``[aa1, S(t1), aa2, S(t2), ...]`` as token strings and their vocabulary ids."""
    check_protein(sequence, tokens, vocab)
    structure = vocab["structure_tokens"]
    strings = [name for residue, token in zip(sequence, tokens) for name in (residue, structure[token])]
    token_to_id = vocab["token_to_id"]
    return strings, [token_to_id[name] for name in strings]


def added_token_string(token: str, vocab: dict[str, Any]) -> str:
    """The tokenizer string of a ``vocab.json`` token (see the module docstring)."""
    if token in vocab["amino_acids"]:
        return f"<aa:{token}>"
    if token in vocab["special_tokens"]:
        return token
    if token in vocab["token_to_id"]:
        return f"<{token}>"
    raise KeyError(f"{token!r} is not a token of the vocabulary")


def combined_token_string(amino_acid: str, structure_token: str) -> str:
    """SaProt-style token for one residue and its structure token, e.g. ``<M|S012>``."""
    return f"<{amino_acid}|{structure_token}>"


def combined_token_strings(vocab: dict[str, Any]) -> list[str]:
    """Every amino-acid x structure-token pair, amino acids outer."""
    return [combined_token_string(aa, s) for aa in vocab["amino_acids"] for s in vocab["structure_tokens"]]


def parse_added_token(text: str) -> tuple[str | None, str | None]:
    """``(amino_acid, structure_token)`` of one added-token or vocabulary string.

    ``<aa:M>``/``M`` -> ``("M", None)``, ``<S012>``/``S012`` -> ``(None, "S012")``,
    ``<M|S012>`` -> ``("M", "S012")``, markers and padding -> ``(None, None)``.
    """
    if text in ("<protein>", "</protein>", PAD):
        return None, None
    if re.fullmatch(r"<aa:[A-Z]>", text):
        return text[4], None
    if re.fullmatch(r"[A-Z]", text):
        return text, None
    match = re.fullmatch(r"<?(S\d+)>?", text)
    if match:
        return None, match.group(1)
    match = re.fullmatch(r"<([A-Z])\|(S\d+)>", text)
    if match:
        return match.group(1), match.group(2)
    raise ValueError(f"{text!r} is not a protein token (expected e.g. <aa:M>, <S012>, <M|S012>, <protein>)")


def render_protein(sequence: str, structure_tokens: Sequence[int], vocab: dict[str, Any], fmt: str) -> str:
    """The protein as a ``<protein>...</protein>`` string of added tokens.

    ``interleaved``: ``<aa:M><S012><aa:K><S003>``; ``combined`` (SaProt-style):
    ``<M|S012><K|S003>``; ``blocks``: ``<aa:M><aa:K><S012><S003>``.
    """
    check_protein(sequence, structure_tokens, vocab)
    names = vocab["structure_tokens"]
    tokens = np.asarray(structure_tokens, dtype=np.int64)
    if tokens.size and int(tokens.max()) >= len(names):
        raise ValueError(f"structure token {int(tokens.max())} is outside the vocabulary (k={len(names)})")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    pieces = _render_pieces(tuple(names), fmt == "combined")
    residues = amino_acid_indices(sequence).astype(np.int64)
    if fmt == "interleaved":
        positions = np.empty(2 * len(residues), dtype=np.int64)
        positions[0::2], positions[1::2] = residues, tokens + len(pieces.residue)
        body = pieces.interleaved[positions]
    elif fmt == "combined":
        body = pieces.combined[residues * len(names) + tokens]
    else:
        body = np.concatenate([pieces.residue[residues], pieces.structure[tokens]])
    return "<protein>" + "".join(body.tolist()) + "</protein>"


@dataclass(frozen=True)
class _Pieces:
    """The added-token strings of a vocabulary as arrays, to render a protein by indexing them
    (amino acids in :data:`AMINO_ACIDS` order)."""

    residue: np.ndarray  # <aa:A>, ...
    structure: np.ndarray  # <S000>, ...
    interleaved: np.ndarray  # residue then structure strings
    combined: np.ndarray | None  # <A|S000>, ...: amino acids outer


@functools.lru_cache(maxsize=8)
def _render_pieces(structure_tokens: tuple[str, ...], combined: bool) -> _Pieces:
    residue = np.array([f"<aa:{aa}>" for aa in AMINO_ACIDS], dtype=object)
    structure = np.array([f"<{name}>" for name in structure_tokens], dtype=object)
    pairs = np.array([combined_token_string(aa, name) for aa in AMINO_ACIDS for name in structure_tokens],
                     dtype=object) if combined else None
    return _Pieces(residue, structure, np.concatenate([residue, structure]), pairs)


def protein_token_count(n_residues: int, fmt: str) -> int:
    """Added tokens of one rendered protein, markers included."""
    return (n_residues if fmt == "combined" else 2 * n_residues) + 2


def protein_token_strings(text: str) -> list[str]:
    """The added-token strings of ``text`` in order (other text ignored).

    Raises ``ValueError`` naming the character position when the text holds no protein token, when
    something that begins like one is cut or malformed (``<S0`` at the end of a cut stream), or when
    a ``<protein>`` is not closed.
    """
    for match in TOKEN_START.finditer(text):
        if not ADDED_TOKEN_PATTERN.fullmatch(match.group()):
            raise ValueError(f"incomplete or malformed protein token {match.group()!r} at character {match.start()}")
    strings = ADDED_TOKEN_PATTERN.findall(text)
    if not strings:
        raise ValueError("no protein tokens in the text (expected e.g. <protein><aa:M><S012>...</protein>)")
    opened = [m.start() for m in re.finditer(r"<protein>", text)]
    if opened and text.rfind("</protein>") < opened[-1]:
        raise ValueError(f"the stream ends inside the protein opened at character {opened[-1]} (no </protein>)")
    return strings


def parse_stream(tokens: str | Sequence[str] | Sequence[int], vocab: dict[str, Any]) -> tuple[str, list[int]]:
    """Amino-acid sequence and structure tokens of one protein stream, in any format.

    ``tokens`` is added-token text (``"<protein><aa:M><S012>...</protein>"``, other text ignored),
    a list of token strings (``vocab.json`` or added-token strings), or ``vocab.json`` ids.
    """
    if isinstance(tokens, str):
        strings = protein_token_strings(tokens)
    else:
        id_to_token = {i: token for token, i in vocab["token_to_id"].items()}
        try:
            strings = [t if isinstance(t, str) else id_to_token[int(t)] for t in tokens]
        except KeyError as unknown:
            raise ValueError(f"id {unknown} is not in the vocabulary (offset {vocab['vocab_offset']})") from None
    index = {name: i for i, name in enumerate(vocab["structure_tokens"])}
    residues, structure = [], []
    for string in strings:
        amino_acid, structure_token = parse_added_token(string)
        if amino_acid is not None:
            residues.append(amino_acid)
        if structure_token is not None:
            if structure_token not in index:
                raise ValueError(f"{string!r} is not a structure token of this vocabulary (k={vocab['k']})")
            structure.append(index[structure_token])
    return "".join(residues), structure


def decode(tokens: str | Sequence[str] | Sequence[int], vocab: dict[str, Any]) -> str:
    """The amino-acid sequence of one protein stream (see :func:`parse_stream`)."""
    return parse_stream(tokens, vocab)[0]
