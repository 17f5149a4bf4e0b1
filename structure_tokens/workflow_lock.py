"""One run per output folder: an exclusive ``flock`` held by the main Snakemake process for its life.

Snakemake's own lock (``.snakemake/locks``) is checked and then created, so two runs started at
the same instant can both pass it and then write the same shard. ``flock`` is atomic, is released
by the kernel when the process ends however it ends (no stale lock to remove), and works on
local disks and NFS; on a file system without it the run goes on with a warning.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from typing import IO, Sequence

LOCK_NAME = ".structure_tokens.lock"
log = logging.getLogger(__name__)
_held: dict[str, IO[str]] = {}  # folders this process holds: parsing the workflow again (API use) keeps them


class OutputFolderBusy(RuntimeError):
    """Another run holds the output folder; the message names it and that run's pid and host."""


def claim_output_folder(folder: str | os.PathLike) -> IO[str] | None:
    """Lock ``folder`` for this process until it exits; keep the returned handle referenced.

    Raises :class:`OutputFolderBusy` at once when another process holds it. Returns ``None``
    (with a warning) where the file system cannot lock.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.realpath(os.path.join(folder, LOCK_NAME))
    if path in _held and not _held[path].closed:
        return _held[path]
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a run that is just starting"
        handle.close()
        raise OutputFolderBusy(
            f"output folder {os.path.abspath(folder)} is in use by another run of this workflow ({holder}); "
            "wait for it to end or stop it: two runs on one folder would write the same files") from None
    except OSError as error:
        handle.close()
        log.warning("could not lock %s (%s): a second run on this folder at the same time would not be refused",
                    path, error)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on host {socket.gethostname()}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
    handle.flush()
    _held[path] = handle
    return handle


def only_inspects(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command line only looks at the workflow (dry run, lint, lists, summaries, unlock)."""
    from snakemake.cli import get_argument_parser

    args, _ = get_argument_parser().parse_known_args(list(argv))
    flags = ("dryrun", "list_rules", "list_target_rules", "summary", "detailed_summary", "unlock", "filegraph",
             "d3dag", "print_compilation")
    options = ("lint", "list_changes", "dag", "rulegraph", "report")  # None unless given
    return any(getattr(args, flag, False) for flag in flags) or any(
        getattr(args, option, None) is not None for option in options)
