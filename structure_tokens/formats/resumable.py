"""Resumable per-shard outputs: a shard's finished proteins survive a crash of the job writing it.

While a shard is being written, finished proteins go to ``<output>.partial/batch_NNNNNN.npz``
(``ids``, ``sequence_hash``, ``lengths`` and the concatenated per-residue ``values``), each file
written atomically, so a job that dies loses at most the proteins queued since the last flush.
Finalising writes the declared output under a temporary name from all batches and renames it into
place: the output never exists half-written. Embedding shards and one-pass token shards use this.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from structure_tokens.formats.atomic import atomic_output

log = logging.getLogger(__name__)


def partial_dir(path: str | os.PathLike) -> Path:
    """Folder holding the finished batches of an unfinished output."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


class ResumableShardWriter:
    """Collect per-protein arrays of one shard; resume from earlier batches; finalise atomically.

    Every protein's array has shape ``(length, *row_shape)`` and is stored as ``dtype``.
    ``done_ids`` lists proteins finished by an earlier, interrupted run with the same ``meta``
    (the settings that decide the values): the caller skips them. Batches of other settings, or
    unreadable ones, are discarded with a warning. Leaving the ``with`` block normally finalises
    the output; an exception keeps the batches. Subclasses write the output in :meth:`_write`.
    """

    def __init__(self, path: str | os.PathLike, *, meta: dict[str, Any], row_shape: tuple[int, ...],
                 dtype: np.dtype | type, flush_rows: int = 16384):
        self.path = Path(path)
        self.flush_rows = flush_rows
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.meta = {"row_shape": list(self.row_shape), "dtype": self.dtype.str, **meta}
        self.partial = partial_dir(self.path)
        self._pending: list[tuple[str, str, np.ndarray]] = []
        self._pending_rows = 0
        self.done_ids: set[str] = set()
        self._batches = self._resume()

    def _resume(self) -> list[Path]:
        meta_path = self.partial / "meta.json"
        if self.partial.exists():
            try:
                same = json.loads(meta_path.read_text()) == json.loads(json.dumps(self.meta))
            except (OSError, ValueError):
                same = False
            if not same:
                log.warning("%s: discarding partial results made with other settings", self.partial)
                shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        if not meta_path.exists():
            with atomic_output(meta_path) as tmp:
                tmp.write_text(json.dumps(self.meta))
        batches = []
        for batch in sorted(self.partial.glob("batch_*.npz")):
            try:
                self.done_ids.update(self._batch_ids(batch))
                batches.append(batch)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                log.warning("%s: discarding unreadable batch (%s)", batch, error)
                batch.unlink()
        if batches:
            log.info("%s: resuming after %d finished batches", self.path, len(batches))
        return batches

    def _batch_ids(self, batch: Path) -> list[str]:
        """Protein ids of a batch file, after checking that its arrays agree with each other."""
        with np.load(batch, allow_pickle=False) as npz:
            ids = npz["ids"].tolist()
            lengths, values = npz["lengths"], npz["values"]
            if (len(lengths) != len(ids) or int(lengths.sum()) != len(values)
                    or values.shape[1:] != self.row_shape or values.dtype != self.dtype):
                raise ValueError("ids, lengths and value rows do not agree")
        return ids

    def add(self, protein_id: str, sequence_hash: str, values: np.ndarray) -> None:
        """Queue one protein's ``(length, *row_shape)`` array."""
        values = np.asarray(values)
        if values.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: values of {protein_id} have shape {values.shape}, "
                             f"expected (length, {', '.join(map(str, self.row_shape))})")
        self._pending.append((protein_id, sequence_hash, values.astype(self.dtype, copy=False)))
        self._pending_rows += len(values)
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
                     lengths=np.array([len(a) for a in arrays], dtype=np.int64), values=np.concatenate(arrays))
        self._batches.append(batch)
        self.done_ids.update(ids)
        self._pending.clear()
        self._pending_rows = 0

    def value_blocks(self) -> Iterator[np.ndarray]:
        """The stored values, one batch at a time, in the order the proteins were added."""
        for batch in self._batches:
            with np.load(batch, allow_pickle=False) as npz:
                yield npz["values"]

    def finalise(self) -> None:
        """Write the output from all batches, rename it into place, remove the batches."""
        self.flush()
        ids, hashes, lengths = [], [], []
        for batch in self._batches:
            with np.load(batch, allow_pickle=False) as npz:
                ids += npz["ids"].tolist()
                hashes += npz["sequence_hash"].tolist()
                lengths += npz["lengths"].tolist()
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        with atomic_output(self.path) as tmp:
            self._write(tmp, ids, hashes, offsets)
        shutil.rmtree(self.partial)

    def _write(self, tmp: Path, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ResumableShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalise()
        else:
            self.flush()  # whole proteins already queued are kept for the next attempt
