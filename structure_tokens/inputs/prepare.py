"""The `prepare` stage: validate, de-duplicate and shard input records in one streaming pass."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.manifest import ManifestWriter
from structure_tokens.formats.shards import Protein, read_shard, shard_name, write_shard
from structure_tokens.inputs.options import InputOptions
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.seen import SeenIndex
from structure_tokens.inputs.validate import ESM2_WINDOW, check_id, clean_sequence, sequence_hash

log = logging.getLogger(__name__)
TEXT_FIELDS = ("description", "function", "instruction")  # record texts that reach the outputs


class _Sharder:
    """Writes kept proteins to shard files as each shard fills; patches aliases in at the end.

    Only the current shard is held in memory; aliases of duplicated sequences go to the on-disk
    index, and a shard whose proteins gained aliases after it was written is read back and
    rewritten once, at the end.
    """

    def __init__(self, shards_dir: Path, shard_size: int, seen: SeenIndex):
        self.dir, self.size, self.seen = shards_dir, shard_size, seen
        self.buffer: list[Protein] = []
        self.names: list[str] = []

    @property
    def current(self) -> str:
        return shard_name(len(self.names))

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.tsv"

    def add(self, protein: Protein) -> str:
        shard = self.current
        self.buffer.append(protein)
        if len(self.buffer) == self.size:
            self.flush()
        return shard

    def flush(self) -> None:
        if self.buffer:
            write_shard(self.path(self.current), self.buffer)
            self.names.append(self.current)
            self.buffer = []

    def finish(self) -> list[str]:
        """Write the last shard, add the aliases, remove shard files left by an earlier run."""
        self.flush()
        for name in self.seen.shards_with_aliases():
            aliases: dict[str, list[str]] = {}
            for protein_id, alias in self.seen.aliases_in(name):
                aliases.setdefault(protein_id, []).append(alias)
            proteins = [replace(p, aliases=p.aliases + tuple(aliases.get(p.id, ())))
                        for p in read_shard(self.path(name))]
            write_shard(self.path(name), proteins)
        for stale in sorted(set(self.dir.glob("shard_*.tsv")) - {self.path(name) for name in self.names}):
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
    """Validate ``records`` by ``options`` and write shards, a manifest row per record and a summary.

    ``long_policy`` (the `model.long_policy` config key) applies to proteins longer than the ESM-2
    window here, so that every later stage sees the sequences that are embedded: ``skip`` lists
    them as skipped, ``truncate`` keeps their first residues (noted in the manifest), ``windows``
    keeps them whole (the embedder averages overlapping windows).

    Memory holds one shard, never the whole input: the ids, sequence hashes and aliases seen so far
    are in an on-disk index (`SeenIndex`), so memory does not grow with the input. Ids must be
    unique over all records (the first occurrence wins). ``options.source`` and ``options.path``
    are recorded in the summary. The manifest is renamed into place only after every shard is complete.
    """
    shard_size, num_proteins = options.shard_size, options.num_proteins
    min_length, max_length = options.min_length, options.max_length
    shards_dir = Path(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    sources: set[str] = set()
    n_kept = n_residues = 0

    with (SeenIndex(shards_dir.parent) as seen, atomic_output(manifest_path) as tmp,
          open(tmp, "w", newline="", encoding="utf-8") as handle):
        sharder = _Sharder(shards_dir, shard_size, seen)
        manifest = ManifestWriter(handle)

        def row(record: InputRecord, status: str, reason: str = "", code: str = "", protein_id: str = "",
                digest: str = "", length: int | str = "", shard: str = "") -> None:
            manifest.write(record.source, record.record_index, record.input_id, status, reason,
                           protein_id, digest, length, shard)
            statuses[status] += 1
            if code:
                reasons[code] += 1

        for record in records:
            sources.add(record.source)
            if "\ufffd" in record.input_id:
                row(record, "skipped", f"id {record.input_id!r} has bytes that are not UTF-8", "invalid_utf8")
                continue
            id_problem = check_id(record.input_id)
            if id_problem:
                row(record, "skipped", id_problem, "unsafe_id")
                continue
            first = seen.first_record_of(record.input_id, record.record_index)
            if first is not None:
                row(record, "skipped", f"duplicate id {record.input_id} (first at record {first})", "duplicate_id")
                continue
            validated = clean_sequence(record.sequence, options.nonstandard_residues)
            if validated.sequence is None:
                row(record, "skipped", validated.reason, validated.code)
                continue
            sequence = validated.sequence
            digest, length = sequence_hash(sequence), len(sequence)
            if length < min_length:
                row(record, "skipped", f"length {length} < min_length {min_length}", "too_short",
                    digest=digest, length=length)
                continue
            if max_length is not None and length > max_length:
                row(record, "skipped", f"length {length} > max_length {max_length}", "too_long",
                    digest=digest, length=length)
                continue
            notes = [f"bytes that are not UTF-8 in the {name}, shown as U+FFFD" for name in TEXT_FIELDS
                     if "\ufffd" in getattr(record, name)]
            if notes:
                reasons["invalid_utf8_text"] += 1
            if length > ESM2_WINDOW and long_policy == "skip":
                row(record, "skipped", f"length {length} > {ESM2_WINDOW}, the model's window (model.long_policy: skip)",
                    "too_long", digest=digest, length=length)
                continue
            if length > ESM2_WINDOW and long_policy == "truncate":
                notes.append(f"truncated from {length} to {ESM2_WINDOW} residues (model.long_policy: truncate)")
                sequence = sequence[:ESM2_WINDOW]
                digest, length = sequence_hash(sequence), ESM2_WINDOW
                reasons["truncated"] += 1
            owner_and_shard = seen.representative(digest)
            if owner_and_shard is not None:
                owner, owner_shard = owner_and_shard
                seen.add_alias(owner, owner_shard, record.input_id)
                row(record, "duplicate_sequence", f"same sequence as {owner}", "duplicate_sequence",
                    owner, digest, length, owner_shard)
                continue
            if num_proteins is not None and n_kept >= num_proteins:
                row(record, "not_selected", f"beyond num_proteins={num_proteins}", "not_selected",
                    digest=digest, length=length)
                continue
            shard = sharder.add(Protein(record.input_id, sequence, digest, (), record.description, record.function,
                                         record.instruction))
            seen.add_representative(digest, record.input_id, shard)
            n_kept += 1
            n_residues += length
            row(record, "kept", "; ".join(notes), "", record.input_id, digest, length, shard)

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
        "shard_size": shard_size,
        "n_shards": len(shards),
        "shards": shards,
    }
    with atomic_output(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info("%d records -> %d proteins (%d residues) in %d shards; %s", summary["n_records"], n_kept,
             n_residues, len(shards), dict(statuses))
    return summary
