"""The `prepare` stage: judge (``validate.judge``), de-duplicate and shard input records in one streaming pass."""

from __future__ import annotations

import filecmp
import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from structure_tokens.formats.atomic import atomic_output, write_json
from structure_tokens.formats.manifest import ManifestWriter
from structure_tokens.formats.shards import Protein, read_shard, shard_name, write_shard
from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.seen import SeenIndex
from structure_tokens.inputs.validate import Verdict, judge

log = logging.getLogger(__name__)


class _Sharder:
    """Stages kept proteins as shard files as each shard fills; at the end patches aliases in and
    moves the shards into place.

    Only the current shard is held in memory; aliases of duplicated sequences go to the on-disk
    index. Shards are first written to the run's scratch folder (next to the shards, removed with
    the index); a shard file that already holds exactly the staged bytes is left untouched,
    modification time included, so that Snakemake does not re-run the jobs that read it.
    """

    def __init__(self, shards_dir: Path, shard_size: int, seen: SeenIndex):
        self.dir, self.size, self.seen = shards_dir, shard_size, seen
        self.buffer: list[Protein] = []
        self.names: list[str] = []

    @property
    def current(self) -> str:
        return shard_name(len(self.names))

    def staged(self, name: str) -> Path:
        return self.seen.folder / f"{name}.tsv"

    def add(self, protein: Protein) -> str:
        shard = self.current
        self.buffer.append(protein)
        if len(self.buffer) == self.size:
            self.flush()
        return shard

    def flush(self) -> None:
        if self.buffer:
            write_shard(self.staged(self.current), self.buffer)
            self.names.append(self.current)
            self.buffer = []

    def finish(self) -> list[str]:
        """Stage the last shard, add the aliases, move changed shards into place, remove stale ones."""
        self.flush()
        for name in self.seen.shards_with_aliases():
            aliases: dict[str, list[str]] = {}
            for protein_id, alias in self.seen.aliases_in(name):
                aliases.setdefault(protein_id, []).append(alias)
            proteins = [replace(p, aliases=p.aliases + tuple(aliases.get(p.id, ())))
                        for p in read_shard(self.staged(name))]
            write_shard(self.staged(name), proteins)
        unchanged = 0
        for name in self.names:
            staged, target = self.staged(name), self.dir / f"{name}.tsv"
            if target.is_file() and filecmp.cmp(staged, target, shallow=False):
                unchanged += 1
            else:
                os.replace(staged, target)
        log.info("%d shard files written, %d unchanged (left as they were)", len(self.names) - unchanged, unchanged)
        for stale in sorted(set(self.dir.glob("shard_*.tsv")) - {self.dir / f"{name}.tsv" for name in self.names}):
            log.info("removing %s, left by an earlier run", stale)
            stale.unlink()
        return self.names


def prepare_inputs(
    records: Iterable[InputRecord],
    options: InputOptions,
    *,
    long_policy: str = "windows",
    shards_dir: str | os.PathLike,
    manifest_path: str | os.PathLike,
    summary_path: str | os.PathLike,
) -> dict[str, Any]:
    """Judge ``records`` by ``options`` (:func:`judge`) and write shards, a manifest row per record and a summary.

    ``long_policy`` (the `model.long_policy` config key) applies to proteins longer than the ESM-2
    window here, so that every later stage sees the sequences that are embedded. Of the records
    the rules keep, one per sequence is kept (the others become its aliases, status
    ``duplicate_sequence``) up to ``options.num_proteins`` (the rest are ``not_selected``).

    Memory holds one shard, never the whole input: the ids, sequence hashes and aliases seen so far
    are in an on-disk index (`SeenIndex`), so memory does not grow with the input. Ids must be
    unique over all records (the first occurrence wins). ``options.source`` and ``options.path``
    are recorded in the summary. Shard files whose bytes would not change are not rewritten. The
    manifest is renamed into place only after every shard is complete.
    """
    rules = options.rules(long_policy)
    shards_dir = Path(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    sources: set[str] = set()
    n_kept = n_residues = 0

    with (SeenIndex(shards_dir.parent) as seen, atomic_output(manifest_path) as tmp,
          open(tmp, "w", newline="", encoding="utf-8") as handle):
        sharder = _Sharder(shards_dir, options.shard_size, seen)
        manifest = ManifestWriter(handle)

        def row(record: InputRecord, status: str, reason: str, code: str, verdict: Verdict,
                protein_id: str = "", shard: str = "") -> None:
            manifest.write(record.source, record.record_index, record.input_id, status, reason, protein_id,
                           verdict.digest, "" if verdict.length is None else verdict.length, shard)
            statuses[status] += 1
            if code:
                reasons[code] += 1

        for record in records:
            sources.add(record.source)
            verdict = judge(record, rules, seen.first_record_of(record.input_id, record.record_index))
            if not verdict.kept:
                row(record, "skipped", verdict.reason, verdict.code, verdict)
                continue
            reasons.update(verdict.counted)
            owner_and_shard = seen.representative(verdict.digest)
            if owner_and_shard is not None:
                owner, owner_shard = owner_and_shard
                seen.add_alias(owner, owner_shard, record.input_id)
                row(record, "duplicate_sequence", f"same sequence as {owner}", "duplicate_sequence", verdict,
                    owner, owner_shard)
            elif options.num_proteins is not None and n_kept >= options.num_proteins:
                row(record, "not_selected", f"beyond num_proteins={options.num_proteins}", "not_selected", verdict)
            else:
                shard = sharder.add(Protein(record.input_id, verdict.sequence, verdict.digest, (),
                                            record.description, record.function, record.instruction))
                seen.add_representative(verdict.digest, record.input_id, shard)
                n_kept += 1
                n_residues += verdict.length
                row(record, "kept", "; ".join(verdict.notes), "", verdict, record.input_id, shard)

        if n_kept == 0:
            where = ", ".join(sorted(sources)) or f"{options.path or options.source} (no records)"
            raise ValueError(f"no protein survived validation of {where}: {dict(reasons) or 'no records'}")
        shards = sharder.finish()
    summary = {
        "source": options.source,
        "input_path": None if options.path is None else str(options.path),
        "sources": sorted(sources),
        "n_records": sum(statuses.values()),
        "status_counts": dict(statuses),
        "reason_counts": dict(reasons),
        "n_proteins": n_kept,
        "n_residues": n_residues,
        "shard_size": options.shard_size,
        "n_shards": len(shards),
        "shards": shards,
    }
    write_json(summary_path, summary, indent=1)
    log.info("%d records -> %d proteins (%d residues) in %d shards; %s", summary["n_records"], n_kept,
             n_residues, len(shards), dict(statuses))
    return summary
