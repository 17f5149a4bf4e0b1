"""The workflow's start-up check of the shard files already on disk (``rules/common.smk``).

A file with a record of its present state (``structure_tokens.formats.checksums``: written by the
job that made it, or by an earlier check) costs one ``stat`` and one small read; any other file is
read in full and every checksum verified, then recorded if intact. So a file whose bytes changed
since it was written (a bad copy, a flipped bit, a manual edit, also with its mtime set back) is
verified, and a damaged one is reported; bit rot that changes no file metadata is left to the jobs,
whose readers check every chunk they read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from structure_tokens.formats import embeddings, tokens
from structure_tokens.formats.checksums import DamagedShard, file_state, is_recorded, record_verified

SHARD_FOLDERS: dict[str, Callable[[Path], None]] = {"embeddings": embeddings.verify, "tokens": tokens.verify}


def damaged_shard_files(output_dir: str | os.PathLike) -> list[DamagedShard]:
    """What is wrong with each damaged ``embeddings/shard_*.h5`` and ``tokens/shard_*.h5`` of ``output_dir``.

    A file is recorded as verified only if its state did not change while it was read, so a file
    replaced meanwhile (by a job running now) is checked again next time.
    """
    damaged = []
    for folder, verify in SHARD_FOLDERS.items():
        for path in sorted(Path(output_dir, folder).glob("shard_*.h5")):
            if is_recorded(path):
                continue
            try:
                state = file_state(path)
                verify(path)
                unchanged = file_state(path) == state
            except FileNotFoundError:
                continue  # removed since the listing (a temp() file deleted by a running workflow)
            except DamagedShard as error:
                if path.exists():
                    damaged.append(error)
                continue
            if unchanged:
                record_verified(path, state)
    return damaged
