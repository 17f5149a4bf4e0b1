"""Add the protein vocabulary to a Hugging Face ``transformers`` tokenizer.

Every ``vocab.json`` token is added under its added-token string (``<aa:M>``, ``<S012>``, see
:mod:`structure_tokens.formats.vocab`). Combined tokens (one per amino-acid x structure-token
pair, ``20 * k`` of them) are only added when asked for; they have no id in ``vocab.json``.
Added tokens are *not* special, so ``tokenizer.decode(..., skip_special_tokens=True)`` keeps
them, and not normalized, so lower-casing normalizers leave them intact. The mapping file
(``structure_token_mapping.json``) records, for every token, its ``vocab.json`` id, added-token
string and tokenizer id.

``transformers`` is imported only by the functions that need it (optional extra ``hf``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from structure_tokens.formats.atomic import write_json
from structure_tokens.formats.vocab import PAD, added_token_string, combined_token_strings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAPPING_FORMAT_VERSION = 1
MAPPING_FILE = "structure_token_mapping.json"


@dataclass(frozen=True)
class TokenMapping:
    """``vocab.json`` ids -> added-token strings and ids of one extended tokenizer."""

    vocab_offset: int
    codebook_sha256: str
    added_tokens: tuple[str, ...]  # indexed by (vocab id - vocab_offset); <pad> -> the tokenizer's pad
    tokenizer_ids: np.ndarray  # int64, indexed by (vocab id - vocab_offset)
    combined_tokens: dict[str, int]  # combined-token string -> tokenizer id (empty unless added)

    def to_tokenizer_ids(self, vocab_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Translate ``vocab.json`` ids (e.g. the ``ids`` of ``interleaved.jsonl``) to tokenizer ids."""
        index = np.asarray(vocab_ids, dtype=np.int64) - self.vocab_offset
        if index.size and (index.min() < 0 or index.max() >= len(self.tokenizer_ids)):
            raise ValueError(f"vocabulary ids must lie in [{self.vocab_offset}, "
                             f"{self.vocab_offset + len(self.tokenizer_ids)})")
        return self.tokenizer_ids[index]

    def string_to_tokenizer_id(self) -> dict[str, int]:
        """Every added-token string (combined ones included) -> its tokenizer id."""
        return {**dict(zip(self.added_tokens, self.tokenizer_ids.tolist())), **self.combined_tokens}


def added_token_strings(vocab: dict[str, Any], combined: bool = False) -> list[str]:
    """Every string :func:`extend_tokenizer` adds for ``vocab``, in vocabulary order (``<pad>`` excluded)."""
    strings = [added_token_string(token, vocab) for token in vocab["token_to_id"] if token != PAD]
    return strings + (combined_token_strings(vocab) if combined else [])


def extend_tokenizer(tokenizer: "PreTrainedTokenizerBase", vocab: dict[str, Any], *,
                     combined: bool = False) -> TokenMapping:
    """Add the protein tokens to ``tokenizer`` in place; return the id mapping.

    Adding is idempotent: strings already in the tokenizer keep their ids. Our ``<pad>`` maps to
    the tokenizer's pad token; a tokenizer without one gets ``<pad>`` as its pad token. Remember
    ``model.resize_token_embeddings(len(tokenizer))`` afterwards.
    """
    from tokenizers import AddedToken

    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
    new = added_token_strings(vocab, combined)
    tokenizer.add_tokens([AddedToken(s, special=False, normalized=False, single_word=False) for s in new])
    string_ids = dict(zip(new, tokenizer.convert_tokens_to_ids(new)))
    added = tuple(tokenizer.pad_token if token == PAD else added_token_string(token, vocab)
                  for token in vocab["token_to_id"])
    ids = [tokenizer.pad_token_id if token == PAD else string_ids[string]
           for token, string in zip(vocab["token_to_id"], added)]
    combined_ids = {s: string_ids[s] for s in combined_token_strings(vocab)} if combined else {}
    return TokenMapping(vocab["vocab_offset"], vocab.get("codebook_sha256", ""), added,
                        np.asarray(ids, dtype=np.int64), combined_ids)


def write_token_mapping(path: str | os.PathLike, mapping: TokenMapping, vocab: dict[str, Any],
                        tokenizer_name: str) -> None:
    """Write the mapping JSON: one record per ``vocab.json`` token, plus combined tokens if added."""
    records = [{"vocab_id": vocab["token_to_id"][token], "token": token, "added_token": added,
                "tokenizer_id": int(tokenizer_id)}
               for token, added, tokenizer_id in zip(vocab["token_to_id"], mapping.added_tokens,
                                                     mapping.tokenizer_ids)]
    content = {"format_version": MAPPING_FORMAT_VERSION, "tokenizer": tokenizer_name,
               "vocab_offset": mapping.vocab_offset, "k": vocab["k"],
               "codebook_sha256": mapping.codebook_sha256, "tokens": records,
               "combined_tokens": mapping.combined_tokens}
    write_json(path, content)


def load_token_mapping(path: str | os.PathLike) -> TokenMapping:
    """Read a mapping JSON written by :func:`write_token_mapping`."""
    content = json.loads(Path(path).read_text())
    if content.get("format_version") != MAPPING_FORMAT_VERSION:
        raise ValueError(f"{path}: mapping format_version {content.get('format_version')!r}, "
                         f"expected {MAPPING_FORMAT_VERSION}")
    records = sorted(content["tokens"], key=lambda record: record["vocab_id"])
    return TokenMapping(content["vocab_offset"], content["codebook_sha256"],
                        tuple(record["added_token"] for record in records),
                        np.asarray([record["tokenizer_id"] for record in records], dtype=np.int64),
                        content["combined_tokens"])


def extend_and_save(tokenizer_dir: str | os.PathLike, vocab_json: str | os.PathLike,
                    out_dir: str | os.PathLike, *, combined: bool = False) -> TokenMapping:
    """Load a local tokenizer, add the protein tokens, save it and its mapping (:data:`MAPPING_FILE`) to ``out_dir``."""
    from transformers import AutoTokenizer

    vocab = json.loads(Path(vocab_json).read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    mapping = extend_tokenizer(tokenizer, vocab, combined=combined)
    tokenizer.save_pretrained(str(out_dir))
    write_token_mapping(Path(out_dir) / MAPPING_FILE, mapping, vocab, str(tokenizer_dir))
    return mapping


