"""Per-shard token files (``tokens/shard_NNNNN.h5``, docs/DESIGN.md): reader, writers, check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.resumable import ResumableShardWriter

FORMAT_VERSION = 1
STRING_DTYPE = h5py.string_dtype("utf-8")


class TokenShard:
    """Reader of ``tokens/shard_NNNNN.h5``: ``ids``, ``sequence_hashes``, ``offsets``, ``tokens``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = h5py.File(self.path, "r")
        try:
            self.ids: list[str] = list(self._h5["ids"].asstr()[()])
            self.sequence_hashes: list[str] = list(self._h5["sequence_hash"].asstr()[()])
            self.offsets: np.ndarray = self._h5["offsets"][()].astype(np.int64)
            self.attrs: dict[str, Any] = dict(self._h5.attrs)
            self.tokens: np.ndarray = self._h5["tokens"][()]
        except KeyError as missing:
            self._h5.close()
            raise ValueError(f"{self.path}: not a tokens file ({missing})") from None
        if len(self.offsets) != len(self.ids) + 1 or self.offsets[-1] != len(self.tokens):
            self._h5.close()
            raise ValueError(f"{self.path}: offsets do not match {len(self.ids)} ids and {len(self.tokens)} tokens")

    @property
    def k(self) -> int:
        return int(self.attrs["k"])

    @property
    def codebook_sha256(self) -> str:
        return str(self.attrs["codebook_sha256"])

    def __len__(self) -> int:
        return len(self.ids)

    def protein(self, i: int) -> np.ndarray:
        """Tokens of the ``i``-th protein of the file (file order)."""
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "TokenShard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a readable, self-consistent tokens file."""
    try:
        with TokenShard(path):
            return True
    except (OSError, ValueError, KeyError):
        return False


def write_token_index(h5: h5py.File, offsets: np.ndarray, ids: list[str], sequence_hashes: list[str],
                      codebook: Codebook) -> None:
    """Everything of a tokens file but the ``tokens`` dataset itself."""
    h5.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
    h5.create_dataset("ids", data=list(ids), dtype=STRING_DTYPE)
    h5.create_dataset("sequence_hash", data=list(sequence_hashes), dtype=STRING_DTYPE)
    h5.attrs.update(format_version=FORMAT_VERSION, codebook_sha256=codebook.sha256, k=codebook.k,
                    model_name=codebook.model_name, layer=codebook.layer)


class TokenWriter(ResumableShardWriter):
    """Collect per-protein tokens of one shard; resume after a crash; finalise the tokens file atomically.

    Batches of an interrupted run are reused only with the same codebook and embedding settings.
    """

    def __init__(self, path: str | os.PathLike, proteins: Sequence[tuple[str, str, str]], codebook: Codebook,
                 embedding_settings: dict[str, Any], flush_rows: int):
        self.codebook = codebook
        self.skipped_ids: list[str] = []
        meta = {"codebook_sha256": codebook.sha256,
                "embedding": {key: str(value) for key, value in embedding_settings.items() if key != "created"}}
        super().__init__(path, proteins=proteins, meta=meta, row_shape=(), dtype=np.uint16, flush_rows=flush_rows)

    def _write(self, tmp: Path, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        with h5py.File(tmp, "w") as h5:
            tokens = h5.create_dataset("tokens", shape=(int(offsets[-1]),), dtype=np.uint16)
            start = 0
            for block in self.value_blocks():
                tokens[start:start + len(block)] = block
                start += len(block)
            write_token_index(h5, offsets, ids, hashes, self.codebook)
            if self.skipped_ids:
                h5.attrs["skipped_ids"] = ";".join(self.skipped_ids)
