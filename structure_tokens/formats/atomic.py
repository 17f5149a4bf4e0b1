"""Atomic outputs: write to a temporary sibling, rename into place only on success.

A temporary sibling is named ``.<name>.<8 random characters>.tmp``. A write killed before its
rename (SIGKILL, a node lost) leaves one behind; the next write of the same output removes it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

RANDOM_PART = re.compile(r"[a-z0-9_]{8}")  # what tempfile puts between prefix and suffix


def _process_umask() -> int:
    """The umask, read once at import (setting it to read it would race with writer threads)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


UMASK = _process_umask()


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary siblings of ``path`` (files or folders) left by earlier writes that never finished."""
    path = Path(path)
    prefix = f".{path.name}."
    return sorted(candidate for candidate in path.parent.glob(f"{glob.escape(prefix)}*.tmp")
                  if RANDOM_PART.fullmatch(candidate.name[len(prefix):-len(".tmp")]))


def remove(path: Path) -> None:
    """Delete a file or a folder tree, if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _temporary(path: Path, folder: bool, *, clean: bool = True) -> Path:
    """A fresh temporary sibling of ``path``, after removing the leftovers of killed writes (``clean``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(path) if clean else ():
        remove(stale)
    options = {"prefix": f".{path.name}.", "suffix": ".tmp", "dir": path.parent}
    if folder:
        tmp = Path(tempfile.mkdtemp(**options))
    else:
        fd, name = tempfile.mkstemp(**options)
        os.close(fd)
        tmp = Path(name)
    tmp.chmod((0o777 if folder else 0o666) & ~UMASK)  # mkstemp/mkdtemp make 0600/0700; outputs get the usual modes
    return tmp


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path per output; rename them all into place, one right after the other,
    only when the block succeeds (so a job's outputs appear together). On error none is kept."""
    paths = [Path(path) for path in paths]
    tmps: list[Path] = []
    try:
        tmps.extend(_temporary(path, folder=False) for path in paths)
        yield tmps
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    The temporary name starts with ``.`` and ends with ``.tmp`` so a half-written file
    never carries the final name. On error the temporary file is removed.
    """
    with atomic_outputs(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it becomes ``path`` (replacing an older one) only
    when the block succeeds, so the folder's files appear together. On error it is removed."""
    path = Path(path)
    tmp = _temporary(path, folder=True)
    try:
        yield tmp
        if path.exists():  # a folder cannot be renamed over a non-empty one: move the old one aside first
            old = _temporary(path, folder=True, clean=False)
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """``target`` as a hard link of ``source`` (no bytes copied), or a copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def json_text(content: object, indent: int | None = 2) -> str:
    """``content`` as the text of a JSON file: indented by ``indent`` (``None``: on one line), with a final newline."""
    return json.dumps(content, indent=indent) + "\n"


def write_json(path: str | os.PathLike, content: object, *, indent: int | None = 2) -> None:
    """``content`` as JSON (:func:`json_text`), written atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(content, indent))
