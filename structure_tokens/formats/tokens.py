"""Per-shard token files (``tokens/shard_NNNNN.h5``, docs/DESIGN.md): reader, writers, check.

Every byte of the file is checksummed (``structure_tokens.formats.checksums``); the reader reads,
and so verifies, all of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from structure_tokens.formats.checksums import (
    DamagedShard,
    check_format,
    checked_dataset,
    open_shard_file,
    read_attrs,
    read_strings,
    reading,
    string_array,
    write_attrs,
)
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.resumable import FLUSH_ROWS, ResumableShardWriter

FORMAT_VERSION = 2  # 2: checksums (format_version 1 files have none and are rebuilt)
DATASETS = ("tokens", "offsets", "ids", "sequence_hash")


class TokenShard:
    """Reader of ``tokens/shard_NNNNN.h5``: ``ids``, ``sequence_hashes``, ``offsets``, ``tokens``,
    ``skipped_ids`` (proteins left out by ``long_policy: skip`` in the one-pass mode).

    Opening it reads and checks the whole file: a :class:`DamagedShard` (a ``ValueError``) names
    the file and what is wrong, such as a failed checksum or a token outside the codebook.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = open_shard_file(self.path)
        try:
            with reading(self.path, "the file"):
                self._load()
        except BaseException:
            self._h5.close()
            raise

    def _load(self) -> None:
        missing = [name for name in DATASETS if name not in self._h5]
        if missing:
            raise DamagedShard(self.path, f"not a tokens file (no dataset {', '.join(missing)})")
        self.attrs: dict[str, Any] = read_attrs(self._h5)
        check_format(self.path, self._h5, self.attrs, FORMAT_VERSION)
        self.ids = read_strings(self.path, self._h5, "ids")
        self.sequence_hashes = read_strings(self.path, self._h5, "sequence_hash")
        self.skipped_ids = read_strings(self.path, self._h5, "skipped_ids", optional=True)
        with reading(self.path, "dataset offsets"):
            self.offsets: np.ndarray = self._h5["offsets"][()].astype(np.int64)
        with reading(self.path, "dataset tokens"):
            self.tokens: np.ndarray = self._h5["tokens"][()]
        if (len(self.offsets) != len(self.ids) + 1 or len(self.sequence_hashes) != len(self.ids)
                or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != len(self.tokens)):
            raise DamagedShard(self.path, f"offsets do not match {len(self.ids)} ids and {len(self.tokens)} tokens")
        self._check_token_range()

    def _check_token_range(self) -> None:
        """A :class:`DamagedShard` naming the first token that is not a code of the shard's k-codebook."""
        if "k" not in self.attrs:
            raise DamagedShard(self.path, "no attribute k")
        if len(self.tokens) and int(self.tokens.max()) >= self.k:
            residue = int(np.argmax(self.tokens >= self.k))
            protein = int(np.searchsorted(self.offsets, residue, side="right")) - 1
            raise DamagedShard(self.path, f"token {int(self.tokens[residue])} of protein {self.ids[protein]} "
                                          f"(residue {residue - int(self.offsets[protein]) + 1}) is out of range "
                                          f"for a codebook of k={self.k}")

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


def verify(path: str | os.PathLike) -> None:
    """Check a whole tokens file: layout, every checksum, token range; a :class:`DamagedShard` if anything fails."""
    with TokenShard(path):
        pass


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a finished, intact tokens file."""
    try:
        verify(path)
    except DamagedShard:
        return False
    return True


def write_token_index(h5: h5py.File, offsets: np.ndarray, ids: list[str], sequence_hashes: list[str],
                      codebook: Codebook) -> None:
    """Everything of a tokens file but the ``tokens`` dataset itself."""
    checked_dataset(h5, "offsets", data=np.asarray(offsets, dtype=np.int64))
    checked_dataset(h5, "ids", data=string_array(ids))
    checked_dataset(h5, "sequence_hash", data=string_array(sequence_hashes))
    write_attrs(h5, {"format_version": FORMAT_VERSION, "codebook_sha256": codebook.sha256, "k": codebook.k,
                     **codebook.provenance.attrs()})


def create_tokens_dataset(h5: h5py.File, n_residues: int) -> h5py.Dataset:
    """The (checksummed) uint16 ``tokens`` dataset, to be filled by the caller."""
    return checked_dataset(h5, "tokens", shape=(n_residues,), dtype=np.uint16)


class TokenWriter(ResumableShardWriter):
    """Collect per-protein tokens of one shard; resume after a crash; finalise the tokens file atomically.

    Batches of an interrupted run are reused only with the same codebook and embedding settings.
    """

    def __init__(self, path: str | os.PathLike, proteins: Sequence[tuple[str, str, str]], codebook: Codebook,
                 embedding_settings: dict[str, Any], flush_rows: int = FLUSH_ROWS):
        self.codebook = codebook
        meta = {"codebook_sha256": codebook.sha256,
                "embedding": {key: str(value) for key, value in embedding_settings.items() if key != "created"}}
        super().__init__(path, proteins=proteins, meta=meta, row_shape=(), dtype=np.uint16, flush_rows=flush_rows)

    def _write(self, h5: h5py.File, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        tokens = create_tokens_dataset(h5, int(offsets[-1]))
        start = 0
        for block in self.value_blocks():
            tokens[start:start + len(block)] = block
            start += len(block)
        write_token_index(h5, offsets, ids, hashes, self.codebook)
