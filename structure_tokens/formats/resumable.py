"""Resumable per-shard outputs: a shard's finished proteins survive a crash of the job writing it.

While a shard is being written, finished proteins go to ``<output>.partial/``: each batch is a
``batch_NNNNNN.npy`` of concatenated per-residue values and, written after it, a
``batch_NNNNNN.npz`` index (``ids``, ``sequence_hash``, ``fingerprint``, ``lengths``); both are
written atomically and a batch counts only once its index exists, so a job that dies loses at most
the proteins queued since the last flush. Batches are written by a background thread, off the
caller's critical path. A resumed run reuses a finished protein only when its id,
its sequence hash, its fingerprint (for embeddings: the forward batches it came from) and the
settings that decide the values (``meta``) all still match; the rest is discarded with a log line.
Finalising writes the declared output under a temporary name, proteins in shard order whatever
order they were finished in, and renames it into place: the output never exists half-written, and
a resumed run writes the same file as a clean one. Embedding shards and one-pass token shards use
this.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import shutil
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.checksums import checked_dataset, create_shard_file, record_verified, string_array

log = logging.getLogger(__name__)
QUEUED_BATCHES = 2  # batches handed to the writer thread and not yet on disk, at most
FLUSH_ROWS = 16384  # queued rows that make a batch when the caller has not flushed (a memory bound)


def partial_dir(path: str | os.PathLike) -> Path:
    """Folder holding the finished batches of an unfinished output."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


class ResumableShardWriter(abc.ABC):
    """Collect per-protein arrays of one shard; resume from earlier batches; finalise atomically.

    ``proteins`` lists the shard's ``(id, sequence_hash, fingerprint)`` in output order; the
    fingerprint is whatever else must match for a stored result to be reused. Every protein's
    array has shape ``(length, *row_shape)`` and is stored as ``dtype``. ``done_ids`` lists the
    proteins an earlier, interrupted run finished with the same sequence, fingerprint and ``meta``:
    the caller skips them. Batches of other settings, unreadable ones, and proteins whose sequence
    or fingerprint changed or that left the shard are discarded with a warning. Leaving the
    ``with`` block normally finalises the output; an exception keeps the batches. Subclasses write
    the output's datasets in :meth:`_write`; ``skipped_ids``, the shard's proteins left out on
    purpose (``long_policy: skip``), become the dataset ``skipped_ids`` when there are any.
    """

    def __init__(self, path: str | os.PathLike, *, proteins: Sequence[tuple[str, str, str]], meta: dict[str, Any],
                 row_shape: tuple[int, ...], dtype: np.dtype | type, flush_rows: int = FLUSH_ROWS):
        self.path = Path(path)
        self.flush_rows = flush_rows
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.meta = {"row_shape": list(self.row_shape), "dtype": self.dtype.str, **meta}
        self.partial = partial_dir(self.path)
        self.skipped_ids: list[str] = []
        self.expected = {protein_id: (digest, fingerprint) for protein_id, digest, fingerprint in proteins}
        if len(self.expected) != len(proteins):
            raise ValueError(f"{self.path}: protein ids are not unique")
        self._pending: list[tuple[str, np.ndarray]] = []
        self._pending_rows = 0
        self._last_batch = -1
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
        self._writes: deque[Future] = deque()
        self._values: dict[int, np.ndarray] = {}  # batch number -> memory-mapped values
        self._found: dict[str, tuple[int, int, int]] = {}  # id -> (batch number, first row, end row)
        self._resume()

    @property
    def done_ids(self) -> set[str]:
        """Proteins whose values are stored (after waiting for the batches being written)."""
        while self._writes:
            self._writes.popleft().result()
        return set(self._found)

    def _resume(self) -> None:
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
        stale: list[str] = []
        for index in sorted(self.partial.glob("batch_*.npz")):
            number = int(index.stem.removeprefix("batch_"))
            self._last_batch = max(self._last_batch, number)
            try:
                ids, keys, lengths = self._open_batch(number)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                log.warning("%s: discarding unreadable batch (%s)", index, error)
                index.unlink()
                continue
            ends = np.cumsum(lengths)
            for protein_id, key, start, end in zip(ids, keys, ends - lengths, ends):
                if self.expected.get(protein_id) == key and protein_id not in self._found:
                    self._found[protein_id] = (number, int(start), int(end))
                else:
                    stale.append(protein_id)
        for values in self.partial.glob("batch_*.npy"):  # values whose index was never written
            if int(values.stem.removeprefix("batch_")) not in self._values:
                values.unlink()
        if stale:
            log.warning("%s: discarding %d finished proteins whose sequence or forward batch changed, or that left "
                        "the shard: %s",
                        self.partial, len(stale), ", ".join(stale[:10]) + (" ..." if len(stale) > 10 else ""))
        if self._found:
            log.info("%s: resuming with %d finished proteins", self.path, len(self._found))

    def _batch_paths(self, number: int) -> tuple[Path, Path]:
        stem = self.partial / f"batch_{number:06d}"
        return stem.with_suffix(".npz"), stem.with_suffix(".npy")

    def _open_batch(self, number: int) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
        """A batch's ids, ``(sequence_hash, fingerprint)`` and lengths, checked against its memory-mapped values."""
        index, values_path = self._batch_paths(number)
        with np.load(index, allow_pickle=False) as npz:
            ids, lengths = npz["ids"].tolist(), npz["lengths"]
            keys = list(zip(npz["sequence_hash"].tolist(), npz["fingerprint"].tolist()))
        values = np.load(values_path, mmap_mode="r", allow_pickle=False)
        if (len(lengths) != len(ids) or len(keys) != len(ids) or int(lengths.sum()) != len(values)
                or values.shape[1:] != self.row_shape or values.dtype != self.dtype):
            raise ValueError("ids, hashes, lengths and value rows do not agree")
        self._values[number] = values
        return ids, keys, lengths

    def add(self, protein_id: str, values: np.ndarray) -> None:
        """Queue one protein's ``(length, *row_shape)`` array."""
        values = np.asarray(values)
        if protein_id not in self.expected:
            raise ValueError(f"{self.path}: {protein_id} is not in the shard")
        if values.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: values of {protein_id} have shape {values.shape}, "
                             f"expected (length, {', '.join(map(str, self.row_shape))})")
        self._pending.append((protein_id, values.astype(self.dtype, copy=False)))
        self._pending_rows += len(values)
        if self._pending_rows >= self.flush_rows:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        """Hand the queued proteins to the writer thread as one batch; with ``wait``, until all are on disk.

        Batches are written in the background (values, then the index that makes the batch count),
        so the caller's next forward pass need not wait for the disk; at most
        :data:`QUEUED_BATCHES` batches wait in memory, and a writer error is raised here.
        """
        if self._pending:
            ids, arrays = zip(*self._pending)
            self._last_batch += 1  # after every earlier batch, never over one
            self._writes.append(self._writer.submit(self._write_batch, self._last_batch, ids, arrays))
            self._pending, self._pending_rows = [], 0
        while self._writes and (wait or len(self._writes) > QUEUED_BATCHES):
            self._writes.popleft().result()

    def _write_batch(self, number: int, ids: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> None:
        """On the writer thread: one batch's files, then its proteins count as stored."""
        hashes, fingerprints = zip(*(self.expected[i] for i in ids))
        index, values_path = self._batch_paths(number)
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        with atomic_output(values_path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.concatenate(arrays))
        with atomic_output(index) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, ids=np.array(ids, dtype=str), sequence_hash=np.array(hashes, dtype=str),
                     fingerprint=np.array(fingerprints, dtype=str), lengths=lengths)
        self._open_batch(number)
        ends = np.cumsum(lengths)
        for protein_id, start, end in zip(ids, ends - lengths, ends):
            self._found[protein_id] = (number, int(start), int(end))

    def value_blocks(self, max_rows: int = 65536) -> Iterator[np.ndarray]:
        """The stored values in shard order, about ``max_rows`` at a time (a protein is never split)."""
        block: list[np.ndarray] = []
        rows = 0
        for protein_id in self._ordered_ids():
            number, start, end = self._found[protein_id]
            block.append(self._values[number][start:end])
            rows += end - start
            if rows >= max_rows:
                yield np.concatenate(block)
                block, rows = [], 0
        if block:
            yield np.concatenate(block)

    def _ordered_ids(self) -> list[str]:
        return [protein_id for protein_id in self.expected if protein_id in self._found]

    def finalise(self) -> None:
        """Write the output (a checksummed HDF5 file) from all batches in shard order, rename it into
        place, record it as verified (see ``structure_tokens.formats.checksums``), remove the batches."""
        self.flush(wait=True)
        self._writer.shutdown()
        ids = self._ordered_ids()
        lengths = [self._found[i][2] - self._found[i][1] for i in ids]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        with atomic_output(self.path) as tmp, create_shard_file(tmp) as h5:
            self._write(h5, ids, [self.expected[i][0] for i in ids], offsets)
            if self.skipped_ids:
                checked_dataset(h5, "skipped_ids", data=string_array(self.skipped_ids))
        record_verified(self.path)
        self._values.clear()
        shutil.rmtree(self.partial)

    @abc.abstractmethod
    def _write(self, h5: h5py.File, ids: list[str], hashes: list[str], offsets: np.ndarray) -> None:
        """Write the shard's datasets into the open file (the subclass's format)."""

    def __enter__(self) -> "ResumableShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalise()
            return
        try:
            self.flush(wait=True)  # whole proteins already queued are kept for the next attempt
        except Exception as error:  # the original error is the one to report
            log.warning("%s: could not keep the last batches (%s)", self.partial, error)
        self._writer.shutdown()
