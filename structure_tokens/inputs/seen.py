"""What `prepare` has seen so far (ids, sequence hashes, aliases), kept on disk in SQLite.

De-duplication must remember every id and every distinct sequence of the input; held in Python
dicts that costs about 200 bytes per record (0.2 GiB at 1M records, growing with the input). In an
SQLite file with a fixed page cache, the job's memory stays the same whatever the input size.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

CACHE_MIB = 64  # SQLite page cache: the index's whole share of the job's memory
FOLDER_PREFIX = ".prepare-index-"
log = logging.getLogger(__name__)


class SeenIndex:
    """Ids, sequence representatives and aliases of one `prepare` run, in a temporary SQLite file.

    The file lives in a temporary folder under ``workdir`` (the results disk, not the node's /tmp),
    ``folder``, which is also the run's scratch space (`prepare` stages its shards there), and is
    removed by :meth:`close`. Use as a context manager. One `prepare` uses a ``workdir`` at
    a time (Snakemake's lock), so index folders already there were left by a killed run and are
    removed first.
    """

    def __init__(self, workdir: str | Path):
        for stale in sorted(Path(workdir).glob(f"{FOLDER_PREFIX}*")):
            log.info("removing %s, left by a killed run", stale)
            shutil.rmtree(stale)
        self._tmp = tempfile.TemporaryDirectory(prefix=FOLDER_PREFIX, dir=workdir)
        self.folder = Path(self._tmp.name)
        self._db = sqlite3.connect(self.folder / "seen.sqlite", isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_MIB * 1024}"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript("""
            CREATE TABLE ids (id TEXT PRIMARY KEY, record_index INTEGER) WITHOUT ROWID;
            CREATE TABLE sequences (hash TEXT PRIMARY KEY, protein_id TEXT, shard TEXT) WITHOUT ROWID;
            CREATE TABLE aliases (shard TEXT, protein_id TEXT, alias TEXT);
            CREATE INDEX aliases_by_shard ON aliases (shard);
            BEGIN;
        """)

    def first_record_of(self, input_id: str, record_index: int) -> int | None:
        """Record ``input_id`` as seen at ``record_index``; if it was seen before, the earlier index."""
        inserted = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?, ?)", (input_id, record_index)).rowcount
        if inserted:
            return None
        return self._db.execute("SELECT record_index FROM ids WHERE id = ?", (input_id,)).fetchone()[0]

    def representative(self, digest: str) -> tuple[str, str] | None:
        """``(protein id, shard)`` of the kept protein with sequence hash ``digest``, if any."""
        found = self._db.execute("SELECT protein_id, shard FROM sequences WHERE hash = ?", (digest,)).fetchone()
        return None if found is None else (found[0], found[1])

    def add_representative(self, digest: str, protein_id: str, shard: str) -> None:
        self._db.execute("INSERT INTO sequences VALUES (?, ?, ?)", (digest, protein_id, shard))

    def add_alias(self, protein_id: str, shard: str, alias: str) -> None:
        """``alias`` is another input id with the sequence of ``protein_id`` (kept in ``shard``)."""
        self._db.execute("INSERT INTO aliases VALUES (?, ?, ?)", (shard, protein_id, alias))

    def shards_with_aliases(self) -> list[str]:
        return [shard for (shard,) in self._db.execute("SELECT DISTINCT shard FROM aliases ORDER BY shard")]

    def aliases_in(self, shard: str) -> Iterator[tuple[str, str]]:
        """``(protein id, alias)`` of one shard, in the order the aliases were met."""
        yield from self._db.execute("SELECT protein_id, alias FROM aliases WHERE shard = ? ORDER BY rowid", (shard,))

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def __enter__(self) -> "SeenIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
