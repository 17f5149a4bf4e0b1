"""Per-shard embedding files (``embeddings/shard_NNNNN.h5``, docs/DESIGN.md): writer, reader, check.

While a shard is being embedded, finished batches go to ``<path>.partial/`` (see
``structure_tokens.formats.resumable``), so a job that dies loses at most the batch in flight; the
declared output never exists half-written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import h5py
import numpy as np

from structure_tokens.formats.resumable import ResumableShardWriter

FORMAT_VERSION = 1
DATASETS = ("embeddings", "offsets", "ids", "sequence_hash")
STRING_DTYPE = h5py.string_dtype("utf-8")
CHUNK_ROWS = 1024


class EmbeddingWriter(ResumableShardWriter):
    """Collect per-protein embeddings of one shard (stored as float16); resume; finalise atomically.

    ``proteins`` are the shard's ``(id, sequence_hash, fingerprint)``, in the order the file keeps
    them (see :class:`ResumableShardWriter`).
    ``attrs`` (model, layer, ...) become the file's attributes and, but for ``created``, decide
    whether batches of an interrupted run are reused (see :class:`ResumableShardWriter`).
    """

    def __init__(self, path: str | os.PathLike, *, proteins: Sequence[tuple[str, str, str]], embed_dim: int,
                 attrs: dict[str, Any], flush_rows: int = 16384):
        # str subclasses such as torch's TorchVersion become plain str, which HDF5 can store
        self.attrs = {key: str(value) if isinstance(value, str) else value
                      for key, value in attrs.items() if value is not None}
        self.embed_dim = int(embed_dim)
        meta = {"attrs": {key: str(value) for key, value in self.attrs.items() if key != "created"}}
        super().__init__(path, proteins=proteins, meta=meta, row_shape=(self.embed_dim,), dtype=np.float16,
                         flush_rows=flush_rows)

    def _write(self, tmp: Path, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        with h5py.File(tmp, "w") as h5:
            rows = int(offsets[-1])
            data = h5.create_dataset("embeddings", shape=(rows, self.embed_dim), dtype=np.float16,
                                     chunks=(min(CHUNK_ROWS, rows), self.embed_dim) if rows else None)
            start = 0
            for block in self.value_blocks():
                data[start:start + len(block)] = block
                start += len(block)
            h5.create_dataset("offsets", data=offsets)
            h5.create_dataset("ids", data=ids, dtype=STRING_DTYPE)
            h5.create_dataset("sequence_hash", data=hashes, dtype=STRING_DTYPE)
            h5.attrs.update(self.attrs)
            h5.attrs.update(format_version=FORMAT_VERSION, embed_dim=self.embed_dim,
                            dtype="float16", complete=True)


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


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a finished, self-consistent embedding shard."""
    try:
        with h5py.File(path, "r") as h5:
            if not all(name in h5 for name in DATASETS) or not h5.attrs.get("complete", False):
                return False
            offsets = h5["offsets"][()]
            n = len(h5["ids"])
            return (len(offsets) == n + 1 and len(h5["sequence_hash"]) == n and offsets[0] == 0
                    and bool(np.all(np.diff(offsets) > 0)) and offsets[-1] == h5["embeddings"].shape[0]
                    and h5["embeddings"].shape[1] == h5.attrs["embed_dim"])
    except (OSError, KeyError, ValueError):
        return False


def shard_model(path: str | os.PathLike, attrs: dict[str, Any]) -> tuple[str, int]:
    """``(model_name, layer)`` of an embedding shard, with a clear error when missing."""
    try:
        return str(attrs["model_name"]), int(attrs["layer"])
    except KeyError as missing:
        raise ValueError(f"{path}: embedding shard has no {missing} attribute") from None


class EmbeddingShard:
    """Reader of one embedding shard; proteins are in the order of the shard's TSV."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not is_complete(self.path):
            raise ValueError(f"{self.path}: missing, truncated or not a complete embedding shard")
        self._h5 = h5py.File(self.path, "r")
        self._data = self._h5["embeddings"]
        self.ids: list[str] = self._h5["ids"].asstr()[()].tolist()
        self.sequence_hashes: list[str] = self._h5["sequence_hash"].asstr()[()].tolist()
        self.offsets: np.ndarray = self._h5["offsets"][()]
        self.attrs: dict[str, Any] = dict(self._h5.attrs)
        self.n_residues, self.dim = self._data.shape

    def protein(self, i: int) -> np.ndarray:
        """Embedding ``(length, dim)`` float16 of the ``i``-th protein in the file."""
        return self._data[self.offsets[i]:self.offsets[i + 1]]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The residue rows ``index`` (any order, repeats allowed), read in increasing order."""
        unique, inverse = np.unique(np.asarray(index, dtype=np.int64), return_inverse=True)
        if len(unique) == 0:
            return np.empty((0, self.dim), dtype=np.float16)
        return self._data[unique][inverse]

    def iter_blocks(self, max_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` over all residues, ``max_rows`` at a time (bounded memory)."""
        for start in range(0, self.n_residues, max_rows):
            yield start, self._data[start:start + max_rows]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "EmbeddingShard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
