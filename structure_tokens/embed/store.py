"""Per-shard embedding files (``embeddings/shard_NNNNN.h5``, docs/DESIGN.md) and their resumable writer.

While a shard is being embedded, finished batches go to ``<path>.partial/batch_NNNNNN.npz``, each
file written atomically, so a job that dies loses at most the batch in flight. Finalising copies
the batches into the HDF5 layout under a temporary name and renames it into place: the declared
output never exists half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from structure_tokens.atomic import atomic_output

FORMAT_VERSION = 1
DATASETS = ("embeddings", "offsets", "ids", "sequence_hash")
STRING_DTYPE = h5py.string_dtype("utf-8")
CHUNK_ROWS = 1024
log = logging.getLogger(__name__)


def partial_dir(path: str | os.PathLike) -> Path:
    """Folder holding the finished batches of an unfinished shard."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


class EmbeddingWriter:
    """Collect per-protein embeddings of one shard; resume from earlier batches; finalise atomically.

    ``done_ids`` lists proteins already embedded by an earlier, interrupted run with the same
    ``attrs`` (model, layer, ...): the caller skips them. Queued proteins are written as a batch
    file once they hold ``flush_rows`` residues, so a crash loses at most that much work.
    Leaving the ``with`` block normally finalises the file; an exception keeps the batches.
    """

    def __init__(self, path: str | os.PathLike, *, embed_dim: int, attrs: dict[str, Any],
                 flush_rows: int = 16384):
        self.path = Path(path)
        self.flush_rows = flush_rows
        self.embed_dim = int(embed_dim)
        # str subclasses such as torch's TorchVersion become plain str, which HDF5 can store
        self.attrs = {key: str(value) if isinstance(value, str) else value
                      for key, value in attrs.items() if value is not None}
        self.partial = partial_dir(self.path)
        self._pending: list[tuple[str, str, np.ndarray]] = []
        self._pending_rows = 0
        self.done_ids: set[str] = set()
        self._batches = self._resume()

    def _meta(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim, "attrs": {k: str(v) for k, v in self.attrs.items()
                                                       if k not in ("created",)}}

    def _resume(self) -> list[Path]:
        """Valid batch files of an earlier run with the same settings (their proteins go to
        ``done_ids``); anything else is discarded with a warning."""
        meta_path = self.partial / "meta.json"
        if self.partial.exists():
            try:
                same = json.loads(meta_path.read_text()) == self._meta()
            except (OSError, ValueError):
                same = False
            if not same:
                log.warning("%s: discarding partial results made with other settings", self.partial)
                shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        if not meta_path.exists():
            with atomic_output(meta_path) as tmp:
                tmp.write_text(json.dumps(self._meta()))
        batches = []
        for batch in sorted(self.partial.glob("batch_*.npz")):
            try:
                self.done_ids.update(_batch_ids(batch, self.embed_dim))
                batches.append(batch)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                log.warning("%s: discarding unreadable batch (%s)", batch, error)
                batch.unlink()
        if batches:
            log.info("%s: resuming after %d finished batches", self.path, len(batches))
        return batches

    def add(self, protein_id: str, sequence_hash: str, embedding: np.ndarray) -> None:
        """Queue one protein's ``(length, embed_dim)`` embedding (stored as float16)."""
        if embedding.ndim != 2 or embedding.shape[1] != self.embed_dim:
            raise ValueError(f"{self.path}: embedding of {protein_id} has shape {embedding.shape}, "
                             f"expected (length, {self.embed_dim})")
        self._pending.append((protein_id, sequence_hash, np.asarray(embedding, dtype=np.float16)))
        self._pending_rows += len(embedding)
        if self._pending_rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the queued proteins as one batch file (atomic)."""
        if not self._pending:
            return
        ids, hashes, arrays = zip(*self._pending)
        number = int(self._batches[-1].stem.removeprefix("batch_")) + 1 if self._batches else 0
        batch = self.partial / f"batch_{number:06d}.npz"  # after the last kept one, never over it
        with atomic_output(batch) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, ids=np.array(ids, dtype=str), sequence_hash=np.array(hashes, dtype=str),
                     lengths=np.array([len(a) for a in arrays], dtype=np.int64),
                     embeddings=np.concatenate(arrays))
        self._batches.append(batch)
        self.done_ids.update(ids)
        self._pending.clear()
        self._pending_rows = 0

    def finalise(self) -> None:
        """Write the HDF5 file from all batches, rename it into place, remove the batches."""
        self.flush()
        ids, hashes, lengths = [], [], []
        for batch in self._batches:
            with np.load(batch, allow_pickle=False) as npz:
                ids += npz["ids"].tolist()
                hashes += npz["sequence_hash"].tolist()
                lengths += npz["lengths"].tolist()
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        with atomic_output(self.path) as tmp, h5py.File(tmp, "w") as h5:
            rows = int(offsets[-1])
            data = h5.create_dataset("embeddings", shape=(rows, self.embed_dim), dtype=np.float16,
                                     chunks=(min(CHUNK_ROWS, rows), self.embed_dim) if rows else None)
            start = 0
            for batch in self._batches:
                with np.load(batch, allow_pickle=False) as npz:
                    block = npz["embeddings"]
                data[start:start + len(block)] = block
                start += len(block)
            h5.create_dataset("offsets", data=offsets)
            h5.create_dataset("ids", data=ids, dtype=STRING_DTYPE)
            h5.create_dataset("sequence_hash", data=hashes, dtype=STRING_DTYPE)
            h5.attrs.update(self.attrs)
            h5.attrs.update(format_version=FORMAT_VERSION, embed_dim=self.embed_dim,
                            dtype="float16", complete=True)
        shutil.rmtree(self.partial)

    def __enter__(self) -> "EmbeddingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalise()
        else:
            self.flush()  # whole proteins already queued are kept for the next attempt


def _batch_ids(batch: Path, embed_dim: int) -> list[str]:
    """Protein ids of a batch file, after checking that its arrays agree with each other."""
    with np.load(batch, allow_pickle=False) as npz:
        ids = npz["ids"].tolist()
        lengths, embeddings = npz["lengths"], npz["embeddings"]
        if len(lengths) != len(ids) or int(lengths.sum()) != len(embeddings) or embeddings.shape[1:] != (embed_dim,):
            raise ValueError("ids, lengths and embedding rows do not agree")
    return ids


def write_embedding_shard(path: str | os.PathLike, ids: Iterable[str], hashes: Iterable[str],
                          embeddings: Iterable[np.ndarray], attrs: dict[str, Any]) -> None:
    """Write a whole shard in one go (tests, small data)."""
    items = list(zip(ids, hashes, embeddings))
    if not items:
        raise ValueError(f"{path}: no proteins to write")
    with EmbeddingWriter(path, embed_dim=items[0][2].shape[1], attrs=attrs) as writer:
        for protein_id, sequence_hash, embedding in items:
            writer.add(protein_id, sequence_hash, embedding)


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


class EmbeddingShard:
    """Reader of one embedding shard; proteins are in embedding order, so match them by ``ids``."""

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
