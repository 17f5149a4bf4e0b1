"""Checksummed shard files: every byte of an embeddings or tokens ``.h5`` is covered by a checksum.

A shard is written in the HDF5 1.10 file format, whose metadata (object headers with the
attributes, chunk indexes) carry Jenkins checksums; every dataset is chunked with HDF5's
Fletcher-32 filter, which HDF5 checks on every chunk it reads; strings, in datasets and
attributes alike, are fixed-length, so none lives in the unchecked global heap. A flipped bit anywhere in a
shard either leaves what it holds unchanged (unused bytes) or makes reading it fail
(``tests/test_integrity.py`` flips every byte of small shards). Readers turn such failures into a
:class:`DamagedShard` naming the file and what could not be read.

A reader checks the chunks it reads, not the whole file; :func:`verify_datasets` reads them all.
Because that costs a full read, a file once verified (or just written) gets a *record* of its
exact ``os.stat`` state (size, mtime, ctime, inode) in ``.verified/<name>.json`` next to it: while
the state is unchanged, the file's bytes have not been written since (any write, also one that
sets the mtime back, changes the ctime), so checks can skip it (``formats.integrity``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from structure_tokens.formats.atomic import write_json

log = logging.getLogger(__name__)
LIBVER = ("v110", "v110")  # checksummed metadata; readable by HDF5 1.10 and later
CHUNK_BYTES = 1 << 20  # target chunk size of 1-D datasets
VERIFY_BYTES = 64 << 20  # read this much at a time when verifying a dataset
MAX_ATTRIBUTE_BYTES = 4000  # HDF5 stores a larger attribute (of a file with over 8) without a checksum


class DamagedShard(ValueError):
    """A shard file that cannot be read, misses parts, fails a checksum or holds impossible values."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path} is incomplete or corrupt: {reason}")
        self.path = Path(path)
        self.reason = reason


def create_shard_file(path: str | os.PathLike) -> h5py.File:
    """A new HDF5 file in the checksummed format of shard files."""
    return h5py.File(path, "w", libver=LIBVER)


def open_shard_file(path: str | os.PathLike) -> h5py.File:
    """Open a shard file for reading; a :class:`DamagedShard` if HDF5 cannot."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DamagedShard(path, f"not a readable HDF5 file ({error})") from None


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn HDF5's read errors (a failed checksum among them) into a :class:`DamagedShard` naming ``what``.

    The file's record goes (:func:`forget_verified`): damage that changed no file metadata, found
    by a job, is then found again by the next start-up check, which has the file rebuilt.
    """
    try:
        yield
    except DamagedShard:
        raise
    except (OSError, KeyError, RuntimeError) as error:  # h5py's errors for unreadable objects
        forget_verified(path)
        failed_filter = "filter returned failure" in str(error)  # Fletcher-32 is the only filter
        raise DamagedShard(path, f"{what} fails its checksum ({error})" if failed_filter
                           else f"cannot read {what} ({error})") from None


def checked_dataset(h5: h5py.File, name: str, *, data: np.ndarray | None = None, shape: Sequence[int] = (),
                    dtype: Any = None, chunk_rows: int | None = None) -> h5py.Dataset:
    """A chunked dataset with the Fletcher-32 filter, from ``data`` or empty with ``shape`` and ``dtype``.

    Chunks hold ``chunk_rows`` rows (default: about :data:`CHUNK_BYTES`); an empty dataset gets an
    unlimited first dimension, since HDF5 has no chunks for a fixed length of 0.
    """
    if data is not None:
        shape, dtype = data.shape, data.dtype
    dtype = np.dtype(dtype)
    rows, row_shape = int(shape[0]), tuple(int(n) for n in shape[1:])
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_BYTES // (dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))))
    return h5.create_dataset(name, shape=(rows, *row_shape), dtype=dtype, data=data, fletcher32=True,
                             chunks=(max(1, min(chunk_rows, rows)), *row_shape),
                             maxshape=(rows if rows else None, *row_shape))


def string_array(values: Sequence[str]) -> np.ndarray:
    """``values`` as fixed-length UTF-8 (HDF5 checksums fixed-length strings, not variable-length ones)."""
    encoded = [value.encode("utf-8") for value in values]
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", max([1, *map(len, encoded)])))


def write_attrs(h5: h5py.File, attrs: dict[str, Any]) -> None:
    """File attributes; strings are stored fixed-length (see :func:`string_array`). Anything
    longer than :data:`MAX_ATTRIBUTE_BYTES` belongs in a dataset."""
    for key, value in attrs.items():
        value = string_array([value])[0] if isinstance(value, str) else np.asarray(value)
        if value.nbytes > MAX_ATTRIBUTE_BYTES:
            raise ValueError(f"attribute {key} has {value.nbytes} bytes, more than the {MAX_ATTRIBUTE_BYTES} "
                             "HDF5 keeps under a checksum")
        h5.attrs.create(key, value)


def read_attrs(h5: h5py.File) -> dict[str, Any]:
    """The file's attributes, fixed-length strings decoded to ``str``."""
    return {key: value.decode("utf-8") if isinstance(value, bytes) else value for key, value in h5.attrs.items()}


def check_format(path: str | os.PathLike, h5: h5py.File, attrs: dict[str, Any], version: int) -> None:
    """A :class:`DamagedShard` unless the file has format ``version`` and a checksum on every dataset.

    Shard files written before checksums (format_version 1) cannot be verified: they count as
    damaged, so the workflow rebuilds them.
    """
    found = attrs.get("format_version")
    if found != version:
        raise DamagedShard(path, f"format_version {found}, expected {version} (files of format_version 1, "
                                 "from before checksums, are rebuilt)")
    unchecked = [name for name in h5 if not h5[name].fletcher32]
    if unchecked:
        raise DamagedShard(path, f"no checksum on dataset {', '.join(unchecked)}")


def read_strings(path: str | os.PathLike, h5: h5py.File, name: str, *, optional: bool = False) -> list[str]:
    """The string dataset ``name`` (checked); ``[]`` for an ``optional`` one that is absent."""
    if optional and name not in h5:
        return []
    with reading(path, f"dataset {name}"):
        return [value.decode("utf-8") for value in h5[name][()].tolist()]


def verify_datasets(path: str | os.PathLike, h5: h5py.File) -> None:
    """Read every chunk of every dataset, so HDF5 checks every checksum; :class:`DamagedShard` if one fails."""
    for name in h5:
        dataset = h5[name]
        row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)))
        step = max(1, VERIFY_BYTES // row_bytes)
        if dataset.chunks:
            step = max(dataset.chunks[0], step // dataset.chunks[0] * dataset.chunks[0])
        with reading(path, f"dataset {name}"):
            for start in range(0, len(dataset), step):
                dataset[start:start + step]


def record_path(path: str | os.PathLike) -> Path:
    """Where the record of a verified ``path`` is kept."""
    path = Path(path)
    return path.parent / ".verified" / f"{path.name}.json"


def file_state(path: str | os.PathLike) -> list[int]:
    """What changes whenever a file's bytes are written: size, mtime, ctime (ns) and inode."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def is_recorded(path: str | os.PathLike) -> bool:
    """True when ``path`` was verified (or written) in exactly its present state."""
    try:
        return json.loads(record_path(path).read_text())["state"] == file_state(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def record_verified(path: str | os.PathLike, state: list[int] | None = None) -> None:
    """Record that ``path`` in ``state`` (default: its present one) is intact; best effort (a
    folder the user cannot write only costs a full check next time)."""
    try:
        write_json(record_path(path), {"state": state if state is not None else file_state(path)})
    except OSError as error:
        log.debug("%s: cannot record the verified state (%s)", path, error)


def forget_verified(path: str | os.PathLike) -> None:
    """Remove the record of ``path`` (best effort, as :func:`record_verified`)."""
    try:
        record_path(path).unlink(missing_ok=True)
    except OSError as error:
        log.debug("%s: cannot remove the verified state (%s)", path, error)
