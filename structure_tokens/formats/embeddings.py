"""Per-shard embedding files (``embeddings/shard_NNNNN.h5``, docs/DESIGN.md): writer, reader, check.

While a shard is being embedded, finished batches go to ``<path>.partial/`` (see
``structure_tokens.formats.resumable``), so a job that dies loses at most the batch in flight; the
declared output never exists half-written. Every byte of the file is checksummed
(``structure_tokens.formats.checksums``): the reader checks what it reads, :func:`verify` all of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

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
    verify_datasets,
    write_attrs,
)
from structure_tokens.formats.provenance import Provenance
from structure_tokens.formats.resumable import FLUSH_ROWS, ResumableShardWriter

FORMAT_VERSION = 2  # 2: checksums (format_version 1 files have none and are rebuilt)
DATASETS = ("embeddings", "offsets", "ids", "sequence_hash")
CHUNK_ROWS = 1024


class EmbeddingWriter(ResumableShardWriter):
    """Collect per-protein embeddings of one shard (stored as float16); resume; finalise atomically.

    ``proteins`` are the shard's ``(id, sequence_hash, fingerprint)``, in the order the file keeps
    them (see :class:`ResumableShardWriter`).
    ``attrs`` (model, layer, ...) become the file's attributes and, but for ``created``, decide
    whether batches of an interrupted run are reused (see :class:`ResumableShardWriter`).
    """

    def __init__(self, path: str | os.PathLike, *, proteins: Sequence[tuple[str, str, str]], embed_dim: int,
                 attrs: dict[str, Any], flush_rows: int = FLUSH_ROWS):
        # str subclasses such as torch's TorchVersion become plain str, which HDF5 can store
        self.attrs = {key: str(value) if isinstance(value, str) else value
                      for key, value in attrs.items() if value is not None}
        self.embed_dim = int(embed_dim)
        meta = {"attrs": {key: str(value) for key, value in self.attrs.items() if key != "created"}}
        super().__init__(path, proteins=proteins, meta=meta, row_shape=(self.embed_dim,), dtype=np.float16,
                         flush_rows=flush_rows)

    def _write(self, h5: h5py.File, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        data = checked_dataset(h5, "embeddings", shape=(int(offsets[-1]), self.embed_dim), dtype=np.float16,
                               chunk_rows=CHUNK_ROWS)
        start = 0
        for block in self.value_blocks():
            data[start:start + len(block)] = block
            start += len(block)
        checked_dataset(h5, "offsets", data=np.asarray(offsets, dtype=np.int64))
        checked_dataset(h5, "ids", data=string_array(ids))
        checked_dataset(h5, "sequence_hash", data=string_array(hashes))
        write_attrs(h5, {**self.attrs, "format_version": FORMAT_VERSION, "embed_dim": self.embed_dim,
                         "dtype": "float16", "complete": True})


def write_embedding_shard(path: str | os.PathLike, ids: Iterable[str], hashes: Iterable[str],
                          embeddings: Iterable[np.ndarray], attrs: dict[str, Any]) -> None:
    """Write a whole shard in one go (tests, small data)."""
    items = list(zip(ids, hashes, embeddings))
    if not items:
        raise ValueError(f"{path}: no proteins to write")
    with EmbeddingWriter(path, proteins=[(i, h, "") for i, h, _ in items], embed_dim=items[0][2].shape[1],
                         attrs=attrs) as writer:
        for protein_id, _, embedding in items:
            writer.add(protein_id, embedding)


def check_layout(path: str | os.PathLike, h5: h5py.File) -> tuple[dict[str, Any], np.ndarray]:
    """The attributes and offsets of an open embedding shard, after checking its datasets, format
    and shapes (not its data checksums); a :class:`DamagedShard` saying what is wrong."""
    missing = [name for name in DATASETS if name not in h5]
    attrs = read_attrs(h5)
    if missing or not attrs.get("complete", False):
        raise DamagedShard(path, "not a complete embedding shard"
                           + (f" (no dataset {', '.join(missing)})" if missing else " (not marked complete)"))
    check_format(path, h5, attrs, FORMAT_VERSION)
    with reading(path, "dataset offsets"):
        offsets = h5["offsets"][()]
    n, shape = len(h5["ids"]), h5["embeddings"].shape
    if not (len(offsets) == n + 1 and len(h5["sequence_hash"]) == n and offsets[0] == 0
            and bool(np.all(np.diff(offsets) > 0)) and offsets[-1] == shape[0] and shape[1] == attrs.get("embed_dim")):
        raise DamagedShard(path, f"offsets, ids and embeddings {shape} do not agree")
    return attrs, offsets


def verify(path: str | os.PathLike) -> None:
    """Check a whole embedding shard, layout and every checksum; a :class:`DamagedShard` if anything fails."""
    with open_shard_file(path) as h5, reading(path, "the file"):
        check_layout(path, h5)
        verify_datasets(path, h5)


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a finished, intact embedding shard (reads all of it: see :func:`verify`)."""
    try:
        verify(path)
    except DamagedShard:
        return False
    return True


class EmbeddingShard:
    """Reader of one embedding shard; proteins are in the order of the shard's TSV.

    Opening it checks the layout; every read checks the checksums of the chunks it reads. What
    fails is a :class:`DamagedShard` (a ``ValueError``) naming the file and the dataset.
    ``skipped_ids``: the shard's proteins left out by ``long_policy: skip``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = open_shard_file(self.path)
        try:
            with reading(self.path, "the file"):
                self.attrs, self.offsets = check_layout(self.path, self._h5)
                self.ids = read_strings(self.path, self._h5, "ids")
                self.sequence_hashes = read_strings(self.path, self._h5, "sequence_hash")
                self.skipped_ids = read_strings(self.path, self._h5, "skipped_ids", optional=True)
                self._data = self._h5["embeddings"]
        except BaseException:
            self._h5.close()
            raise
        self.n_residues, self.dim = self._data.shape

    @property
    def provenance(self) -> Provenance:
        """Model, layer, dim and weights origin of the embeddings (a ``ValueError`` if the file lacks them)."""
        return Provenance.from_attrs(self.path, self.attrs)

    def _read(self, selection: Any) -> np.ndarray:
        """Rows of ``/embeddings``; HDF5 checks the checksum of every chunk read."""
        with reading(self.path, "dataset embeddings"):
            return self._data[selection]

    def protein(self, i: int) -> np.ndarray:
        """Embedding ``(length, dim)`` float16 of the ``i``-th protein in the file."""
        return self._read(np.s_[self.offsets[i]:self.offsets[i + 1]])

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The residue rows ``index`` (any order, repeats allowed), read in increasing order."""
        unique, inverse = np.unique(np.asarray(index, dtype=np.int64), return_inverse=True)
        if len(unique) == 0:
            return np.empty((0, self.dim), dtype=np.float16)
        return self._read(unique)[inverse]

    def iter_blocks(self, max_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` over all residues, ``max_rows`` at a time (bounded memory)."""
        for start in range(0, self.n_residues, max_rows):
            yield start, self._read(np.s_[start:start + max_rows])

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "EmbeddingShard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
