"""Instruction-tuning data from the token table: rendered proteins, leak-free splits, Parquet files.

Made in two steps, so that the work per protein runs per shard while the GPUs are still busy:

- :func:`write_finetune_part` turns one part of the token table (in the workflow, one shard's
  ``tokens.parquet/shard_NNNNN.parquet``) into a part folder: its rows of each split, in Parquet
  (and JSONL) files of at most ``rows_per_shard`` rows, and ``part.json`` with its counts;
- :func:`assemble_finetune_data` makes the output folder from the part folders: it links their
  files in (hard links, no bytes copied) and writes ``manifest.json`` and the dataset card from
  their counts, without reading a row.

:func:`write_finetune_data` does both for a whole token table (a Parquet file or folder).

Layout of the output folder (``sft/``)::

    README.md                      dataset card (Hugging Face format, ``llm.dataset_card``)
    manifest.json                  counts, token stats, codebook hash, model name, file hashes
    data/train-00000.parquet ...   one folder of files: datasets.load_dataset("parquet", data_dir=...)
    data/validation-00000.parquet, data/test-00000.parquet
    jsonl/train-00000.jsonl ...    the same rows as JSON lines, file for file (optional)

Files are numbered per split in token-table order; a file never holds rows of two shards.
Every row is one protein with a non-empty target text: ``id, aliases, split, instruction,
protein, prompt, completion, n_residues``. ``protein`` is the structure-aware stream in
one of :data:`FORMATS`, written with the added-token strings of
:mod:`structure_tokens.hf_tokenizer`; ``prompt`` is ``prompt_template`` filled with the
instruction and the protein; ``completion`` is the target: the protein's function text, or with
``target: description`` its description (the FASTA header, the UniProt protein name).

Splits are drawn per *group*: a protein's group is its exact sequence (``split_method:
sequence``) or its cluster in an MMseqs2-style cluster TSV (``split_method: clusters``). The
split of a group is a seeded hash of its key, so identical sequences (or cluster members) never
land in two splits, and a protein keeps its split when proteins are added to the input.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from structure_tokens.formats.atomic import atomic_directory, link_or_copy, write_json
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.vocab import protein_token_count, render_protein
from structure_tokens.llm.dataset_card import write_dataset_card
from structure_tokens.llm.options import FinetuneOptions

log = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 2
PART_FORMAT_VERSION = 1
SFT_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("aliases", pa.list_(pa.string())),
    ("split", pa.string()),
    ("instruction", pa.string()),
    ("protein", pa.string()),
    ("prompt", pa.string()),
    ("completion", pa.string()),
    ("n_residues", pa.int64()),
])
TOKEN_COLUMNS = ("id", "aliases", "sequence", "structure_tokens", "instruction")
ROWS_PER_BATCH = 1024  # token-table rows read, and SFT rows written, at a time
GROUPS_PER_RANGE = 1 << 18  # group hashes in memory at a time when counting distinct groups (2 MB)


def split_of(group_key: str, seed: int, fractions: Mapping[str, float]) -> str:
    """The split of a group: ``sha256(seed, key)`` as a number in [0, 1) against cumulative fractions."""
    digest = hashlib.sha256(f"{seed}\0{group_key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if position < cumulative:
            return name
    return next(name for name, fraction in reversed(list(fractions.items())) if fraction > 0)


def group_hash(group_key: str) -> int:
    """A 64-bit hash of a group key, to count distinct groups across parts."""
    return int.from_bytes(hashlib.sha256(group_key.encode()).digest()[:8], "big")


def read_clusters(path: str | os.PathLike, wanted: set[str] | None = None) -> dict[str, str]:
    """Member id -> representative id from a two-column TSV (``mmseqs createtsv`` / ``easy-cluster``),
    for the ids in ``wanted`` only when given (so memory follows the part, not the TSV)."""
    clusters: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if len(row) != 2:
                raise ValueError(f"{path}: line {line_number} has {len(row)} columns, "
                                 "expected 2 (representative, member)")
            representative, member = row
            if wanted is None or member in wanted:
                clusters[member] = representative
            if wanted is None or representative in wanted:
                clusters.setdefault(representative, representative)
    return clusters


def group_key(row: Mapping[str, Any], clusters: Mapping[str, str] | None, clusters_path: str | None) -> str:
    """The split group of a token-table row: its sequence, or its cluster representative."""
    if clusters is None:
        return "sequence:" + row["sequence"]
    for name in (row["id"], *row["aliases"]):
        if name in clusters:
            return "cluster:" + clusters[name]
    raise ValueError(f"{clusters_path}: protein {row['id']} (aliases {list(row['aliases'])}) is in no cluster; "
                     "re-run the clustering on the current proteins")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def token_table_files(token_table: str | os.PathLike) -> list[Path]:
    """The Parquet files of a token table: the file itself, or a folder's visible ``*.parquet`` files in order."""
    token_table = Path(token_table)
    return sorted(token_table.glob("[!._]*.parquet")) if token_table.is_dir() else [token_table]


def iter_token_rows(table_file: str | os.PathLike, target: str) -> Iterator[dict[str, Any]]:
    """Rows of a token-table Parquet file, ``ROWS_PER_BATCH`` at a time (only the columns used);
    ``structure_tokens`` as a NumPy array."""
    parquet = pq.ParquetFile(table_file)
    present = set(parquet.schema_arrow.names)
    if target not in present:
        raise ValueError(f"{table_file} has no column {target!r} (finetune.target); it has {sorted(present)}")
    columns = [name for name in (*TOKEN_COLUMNS, target) if name in present]
    for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH, columns=columns):
        tokens = batch.column("structure_tokens")
        values, offsets = tokens.values.to_numpy(zero_copy_only=False), tokens.offsets.to_numpy()
        others = batch.select([name for name in columns if name != "structure_tokens"]).to_pylist()
        for i, row in enumerate(others):
            row["structure_tokens"] = values[offsets[i]:offsets[i + 1]]
            yield row


class _Extremes:
    """Count, sum, min and max of a stream of integers (memory does not grow with the stream)."""

    def __init__(self) -> None:
        self.n = self.sum = 0
        self.min = self.max = None

    def add(self, value: int) -> None:
        self.merge({"n": 1, "sum": value, "min": value, "max": value})

    def merge(self, other: Mapping[str, Any]) -> None:
        """Add the values another stream summed up (its :meth:`to_json`)."""
        if other["n"]:
            self.n += other["n"]
            self.sum += other["sum"]
            self.min = other["min"] if self.min is None else min(self.min, other["min"])
            self.max = other["max"] if self.max is None else max(self.max, other["max"])

    def to_json(self) -> dict[str, int | None]:
        return {"n": self.n, "sum": self.sum, "min": self.min, "max": self.max}

    def described(self) -> dict[str, float]:
        """``min, mean, max`` (0 when there is nothing)."""
        if not self.n:
            return {"min": 0, "mean": 0.0, "max": 0}
        return {"min": self.min, "mean": self.sum / self.n, "max": self.max}


class _SplitWriter:
    """Rows of one split of a part: ``<split>-NNNNN.parquet`` (and ``.jsonl``) of ``rows_per_file`` rows,
    written ``ROWS_PER_BATCH`` rows at a time (one Parquet row group each)."""

    def __init__(self, folder: Path, split: str, rows_per_file: int, jsonl: bool):
        self.folder, self.split, self.rows_per_file, self.jsonl = folder, split, rows_per_file, jsonl
        self.rows: list[dict[str, Any]] = []  # not yet written
        self.files: list[dict[str, Any]] = []  # finished files
        self.groups: set[int] = set()
        self.residues, self.protein_tokens, self.target_chars = _Extremes(), _Extremes(), _Extremes()
        self._parquet: pq.ParquetWriter | None = None
        self._jsonl: TextIO | None = None
        self._file_rows = 0

    def add(self, row: dict[str, Any], group: int, protein_tokens: int, target_chars: int) -> None:
        self.rows.append(row)
        self.groups.add(group)
        self.residues.add(row["n_residues"])
        self.protein_tokens.add(protein_tokens)
        self.target_chars.add(target_chars)
        if len(self.rows) >= ROWS_PER_BATCH or self._file_rows + len(self.rows) >= self.rows_per_file:
            self._write_rows()

    def _stem(self) -> str:
        return f"{self.split}-{len(self.files):05d}"

    def _write_rows(self) -> None:
        if not self.rows:
            return
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.folder / f"{self._stem()}.parquet", SFT_SCHEMA)
            if self.jsonl:
                self._jsonl = open(self.folder / f"{self._stem()}.jsonl", "w", encoding="utf-8")
        self._parquet.write_table(pa.Table.from_pylist(self.rows, schema=SFT_SCHEMA))
        if self._jsonl is not None:
            self._jsonl.writelines(json.dumps(row) + "\n" for row in self.rows)
        self._file_rows += len(self.rows)
        self.rows = []
        if self._file_rows >= self.rows_per_file:
            self._close_file()

    def _close_file(self) -> None:
        self._parquet.close()
        path = self.folder / f"{self._stem()}.parquet"
        entry = {"name": path.name, "rows": self._file_rows, "sha256": file_sha256(path)}
        if self._jsonl is not None:
            self._jsonl.close()
            jsonl = path.with_suffix(".jsonl")
            entry["jsonl"] = {"name": jsonl.name, "sha256": file_sha256(jsonl)}
        self.files.append(entry)
        self._parquet, self._jsonl, self._file_rows = None, None, 0

    def flush(self) -> None:
        """Write the rows left and finish the last file."""
        self._write_rows()
        if self._parquet is not None:
            self._close_file()

    def summary(self) -> dict[str, Any]:
        """The split's counts for ``part.json``; its distinct group hashes go to ``groups-<split>.npy``."""
        if self.groups:
            np.save(self.folder / f"groups-{self.split}.npy", np.array(sorted(self.groups), dtype=np.uint64))
        return {"examples": self.residues.n, "groups": len(self.groups), "residues": self.residues.to_json(),
                "protein_tokens": self.protein_tokens.to_json(), "target_chars": self.target_chars.to_json(),
                "files": self.files}


def check_vocab(vocab_json: str | os.PathLike, codebook_npz: str | os.PathLike) -> tuple[dict[str, Any], Codebook]:
    """``vocab.json`` and the codebook, which must be the one the vocabulary was written for."""
    vocab = json.loads(Path(vocab_json).read_text())
    codebook = Codebook.load(codebook_npz)
    if vocab.get("codebook_sha256") != codebook.sha256:
        raise ValueError(f"{vocab_json} was written for codebook {vocab.get('codebook_sha256')}, "
                         f"not for {codebook_npz} ({codebook.sha256})")
    return vocab, codebook


def part_clusters(table_file: Path, options: FinetuneOptions) -> dict[str, str] | None:
    """For cluster splits, the clusters of this part's ids and aliases (the TSV is streamed)."""
    if options.split_method != "clusters":
        return None
    names = pq.read_table(table_file, columns=["id", "aliases"])
    wanted = set(names["id"].to_pylist()) | {alias for aliases in names["aliases"].to_pylist() for alias in aliases}
    return read_clusters(options.clusters_tsv, wanted)


def part_options(options: FinetuneOptions) -> dict[str, Any]:
    """The options a part folder was made with, as ``part.json`` keeps them (JSON types)."""
    return json.loads(json.dumps(dataclasses.asdict(options)))


def row_target(row: Mapping[str, Any], target: str) -> str:
    """A token-table row's target text (its ``target`` column), stripped; empty when it has none."""
    return (row.get(target) or "").strip()


def row_group(row: Mapping[str, Any], clusters: Mapping[str, str] | None,
              options: FinetuneOptions) -> tuple[str, str]:
    """A row's split group (:func:`group_key`) and the split that group falls in (:func:`split_of`)."""
    key = group_key(row, clusters, options.clusters_tsv)
    return key, split_of(key, options.seed, options.fractions)


def rendered_protein(row: Mapping[str, Any], vocab: Mapping[str, Any], protein_format: str,
                     table_file: str | os.PathLike) -> str:
    """A row's protein as a structure-aware stream; a rendering error names the file and the protein."""
    try:
        return render_protein(row["sequence"], row["structure_tokens"], vocab, protein_format)
    except ValueError as error:
        raise ValueError(f"{table_file}: protein {row['id']}: {error}") from None


def sft_row(row: Mapping[str, Any], split: str, protein: str, target: str,
            options: FinetuneOptions) -> dict[str, Any]:
    """The SFT row of a token-table row: its own instruction when not blank, else ``options.instruction``."""
    instruction = (row.get("instruction") or "").strip() or options.instruction
    return {"id": row["id"], "aliases": list(row["aliases"]), "split": split,
            "instruction": instruction, "protein": protein,
            "prompt": options.prompt_template.format(instruction=instruction, protein=protein),
            "completion": target, "n_residues": len(row["sequence"])}


@dataclasses.dataclass
class _PartTally:
    """A part's counts beside its splits: rows read, rows without target text, uses of each structure token."""

    structure_usage: np.ndarray
    n_read: int = 0
    without_target: int = 0


def _write_part_rows(table_file: Path, vocab: Mapping[str, Any], clusters: Mapping[str, str] | None,
                     options: FinetuneOptions, writers: Mapping[str, _SplitWriter], tally: _PartTally) -> None:
    """Every row of ``table_file`` with target text to the writer of its split; every row counted in ``tally``."""
    for row in iter_token_rows(table_file, options.target):
        tally.n_read += 1
        target = row_target(row, options.target)
        if not target:
            tally.without_target += 1
            continue
        key, split = row_group(row, clusters, options)
        protein = rendered_protein(row, vocab, options.format, table_file)
        writers[split].add(sft_row(row, split, protein, target, options), group_hash(key),
                           protein_token_count(len(row["sequence"]), options.format), len(target))
        tally.structure_usage += np.bincount(row["structure_tokens"], minlength=tally.structure_usage.size)


def part_json(table_file: str | os.PathLike, source_sha256: str, codebook_sha256: str, options: FinetuneOptions,
              tally: _PartTally, splits: Mapping[str, Any]) -> dict[str, Any]:
    """The content of a part folder's ``part.json``."""
    return {"format_version": PART_FORMAT_VERSION, "source": str(table_file), "source_sha256": source_sha256,
            "codebook_sha256": codebook_sha256, "options": part_options(options), "proteins_read": tally.n_read,
            "without_target": tally.without_target, "structure_usage": tally.structure_usage.tolist(),
            "splits": dict(splits)}


def write_finetune_part(table_file: str | os.PathLike, vocab_json: str | os.PathLike,
                        codebook_npz: str | os.PathLike, out_dir: str | os.PathLike,
                        options: FinetuneOptions = FinetuneOptions()) -> dict[str, Any]:
    """Render every protein of one token-table file that has target text into SFT rows, split them
    and write the part folder ``out_dir`` (all its files appear together); return ``part.json``.

    Uses the table's ``instruction`` column when the row's value is not empty, else
    ``options.instruction``. Rows without target text are counted, not written. Memory holds
    ``ROWS_PER_BATCH`` table rows, ``rows_per_shard`` SFT rows and the part's group hashes.
    """
    vocab, codebook = check_vocab(vocab_json, codebook_npz)
    table_file = Path(table_file)
    clusters = part_clusters(table_file, options)
    tally = _PartTally(np.zeros(codebook.k, dtype=np.int64))
    with atomic_directory(out_dir) as folder:
        writers = {split: _SplitWriter(folder, split, options.rows_per_shard, options.jsonl)
                   for split in options.fractions}
        _write_part_rows(table_file, vocab, clusters, options, writers, tally)
        for writer in writers.values():
            writer.flush()
        part = part_json(table_file, file_sha256(table_file), codebook.sha256, options, tally,
                         {split: writer.summary() for split, writer in writers.items()})
        write_json(folder / "part.json", part, indent=None)
    return part


def count_distinct(sorted_files: Sequence[Path], total: int) -> int:
    """Distinct values over ``.npy`` files of sorted, distinct uint64 values (``total`` values in all).

    The values are split by range into temporary files, one file at a time, and each range is then
    counted alone: memory holds one file's values and one range (about :data:`GROUPS_PER_RANGE`
    values), whatever the total.
    """
    n_ranges = max(1, -(-total // GROUPS_PER_RANGE))
    bounds = np.array([i * 2**64 // n_ranges for i in range(1, n_ranges)], dtype=np.uint64)
    with ExitStack() as stack:
        ranges = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(n_ranges)]
        for path in sorted_files:
            values = np.load(path)
            for range_file, piece in zip(ranges, np.split(values, np.searchsorted(values, bounds))):
                range_file.write(piece.tobytes())
        distinct = 0
        for range_file in ranges:
            range_file.seek(0)
            distinct += len(np.unique(np.frombuffer(range_file.read(), dtype=np.uint64)))
    return distinct


def finetune_warnings(n_read: int, n_examples: int, target: str) -> list[str]:
    """What a user must hear about the instruction data: no example at all."""
    if not n_read or n_examples:
        return []
    advice = ("FASTA records have no function text: set finetune.target: description to use the text of "
              "their headers as completions, or give UniProt or ProteinLMBench input" if target == "function"
              else "no record has a description")
    return [f"the instruction data is empty: none of the {n_read} proteins has {target} text "
            f"(finetune.target: {target}); {advice}"]


def read_part(folder: Path, codebook_sha256: str, options: FinetuneOptions) -> dict[str, Any]:
    """A part folder's ``part.json``; refused when the part was made with another codebook or other options."""
    part = json.loads((folder / "part.json").read_text())
    if part["codebook_sha256"] != codebook_sha256 or part["options"] != part_options(options):
        raise ValueError(f"{folder} was made with codebook {part['codebook_sha256']} and {part['options']}, "
                         f"not with {codebook_sha256} and {part_options(options)}")
    return part


class _SplitFiles:
    """One split of the output folder, part after part: its files, linked in and renumbered, and its counts."""

    def __init__(self, out: Path, split: str, jsonl: bool):
        self.out, self.split, self.jsonl = out, split, jsonl
        self.files: list[dict[str, Any]] = []
        self.jsonl_files: list[dict[str, Any]] = []
        self.group_files: list[Path] = []
        self.examples = self.groups = 0  # groups seen in several parts counted once per part
        self.extremes = {key: _Extremes() for key in ("residues", "protein_tokens", "target_chars")}

    def add(self, folder: Path, info: Mapping[str, Any]) -> None:
        """The files and counts of this split in a part folder (``info``: the split in its ``part.json``)."""
        for entry in info["files"]:
            self._link(folder, entry)
        if info["groups"]:
            self.group_files.append(folder / f"groups-{self.split}.npy")
        self.groups += info["groups"]
        self.examples += info["examples"]
        for key, extremes in self.extremes.items():
            extremes.merge(info[key])

    def _link(self, folder: Path, entry: Mapping[str, Any]) -> None:
        """One file of a part (and its JSONL twin) linked in under the split's next number."""
        stem = f"{self.split}-{len(self.files):05d}"
        link_or_copy(folder / entry["name"], self.out / "data" / f"{stem}.parquet")
        self.files.append({"path": f"data/{stem}.parquet", "rows": entry["rows"], "sha256": entry["sha256"]})
        if self.jsonl:
            link_or_copy(folder / entry["jsonl"]["name"], self.out / "jsonl" / f"{stem}.jsonl")
            self.jsonl_files.append({"path": f"jsonl/{stem}.jsonl", "rows": entry["rows"],
                                     "sha256": entry["jsonl"]["sha256"]})

    def summary(self) -> dict[str, Any]:
        """The split's entry in ``manifest.json``; distinct groups are counted over the parts' group files."""
        return {"examples": self.examples, "groups": count_distinct(self.group_files, self.groups),
                "residues": self.extremes["residues"].sum,
                "protein_tokens": self.extremes["protein_tokens"].described(),
                "target_chars": self.extremes["target_chars"].described(),
                "files": self.files, **({"jsonl": self.jsonl_files} if self.jsonl else {})}


class _Assembly:
    """The output folder's files and counts, one part at a time (only the parts' ``part.json`` is read)."""

    def __init__(self, out: Path, k: int, options: FinetuneOptions):
        self.splits = {split: _SplitFiles(out, split, options.jsonl) for split in options.fractions}
        self.structure_usage = np.zeros(k, dtype=np.int64)
        self.source_digest = hashlib.sha256()  # of the token-table files' digests (the part jobs hashed the files)
        self.n_read = self.without_target = 0

    def add(self, folder: Path, part: Mapping[str, Any]) -> None:
        """A part folder's files and counts (``part``: its ``part.json``)."""
        for split, files in self.splits.items():
            files.add(folder, part["splits"][split])
        self.structure_usage += np.asarray(part["structure_usage"], dtype=np.int64)
        self.source_digest.update(part["source_sha256"].encode())
        self.n_read += part["proteins_read"]
        self.without_target += part["without_target"]

    def counts(self) -> dict[str, int]:
        """Proteins read, those without target text, and the examples written (the rest)."""
        return {"proteins_read": self.n_read, "without_target": self.without_target,
                "examples": self.n_read - self.without_target}


def finetune_manifest(codebook: Codebook, vocab_offset: int, options: FinetuneOptions, source: Mapping[str, Any],
                      counts: Mapping[str, int], structure_tokens_used: int, splits: Mapping[str, Any],
                      created: str) -> dict[str, Any]:
    """The content of ``manifest.json``: ``source`` and ``counts`` as :class:`_Assembly` gives them, ``splits``
    the per-split entries; the warnings follow from the counts (:func:`finetune_warnings`)."""
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "created": created,
        "source": dict(source),
        "model_name": codebook.model_name, "layer": codebook.layer,
        "codebook_sha256": codebook.sha256, "k": codebook.k, "vocab_offset": vocab_offset,
        "format": options.format, "combined_tokens_needed": options.format == "combined",
        "target": options.target,
        "instruction_default": options.instruction, "prompt_template": options.prompt_template,
        "split": {"method": options.split_method, "clusters_tsv": options.clusters_tsv,
                  "seed": options.seed, "fractions": dict(options.fractions)},
        "counts": dict(counts),
        "warnings": finetune_warnings(counts["proteins_read"], counts["examples"], options.target),
        "structure_tokens_used": structure_tokens_used,
        "data_files": {split: [f["path"] for f in info["files"]] for split, info in splits.items()},
        "splits": dict(splits),
    }


def assemble_finetune_data(part_dirs: Sequence[str | os.PathLike], vocab_json: str | os.PathLike,
                           codebook_npz: str | os.PathLike, out_dir: str | os.PathLike,
                           options: FinetuneOptions = FinetuneOptions(), *, source: str = "fasta",
                           token_table: str | os.PathLike = "tokens.parquet") -> dict[str, Any]:
    """The SFT folder ``out_dir`` from part folders of :func:`write_finetune_part`, in their order:
    their files linked in and renumbered per split, ``manifest.json`` and a dataset card
    ``README.md`` (its licence and attribution follow ``source``, the config's ``input.source``).
    The folder appears as a whole. Reads only the parts' counts; returns the manifest."""
    vocab, codebook = check_vocab(vocab_json, codebook_npz)
    with atomic_directory(out_dir) as tmp:
        (tmp / "data").mkdir()
        if options.jsonl:
            (tmp / "jsonl").mkdir()
        assembly = _Assembly(tmp, codebook.k, options)
        for folder in map(Path, part_dirs):  # one part in memory at a time
            assembly.add(folder, read_part(folder, codebook.sha256, options))
        tables = {"tokens_parquet": str(token_table), "files": len(part_dirs),
                  "tokens_parquet_sha256": assembly.source_digest.hexdigest()}
        splits = {split: files.summary() for split, files in assembly.splits.items()}
        manifest = finetune_manifest(codebook, vocab["vocab_offset"], options, tables, assembly.counts(),
                                     int(np.count_nonzero(assembly.structure_usage)), splits,
                                     created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_json(tmp / "manifest.json", manifest, indent=1)
        write_dataset_card(tmp, manifest, source)
    for warning in manifest["warnings"]:
        log.warning("%s: %s", out_dir, warning)
    return manifest


def write_finetune_parts(token_table: str | os.PathLike, vocab_json: str | os.PathLike,
                         codebook_npz: str | os.PathLike, folder: str | os.PathLike,
                         options: FinetuneOptions = FinetuneOptions()) -> list[Path]:
    """One part folder ``folder/part_NNNNN`` per file of a token table (:func:`write_finetune_part`), in order."""
    parts = []
    for number, table_file in enumerate(token_table_files(token_table)):
        parts.append(Path(folder) / f"part_{number:05d}")
        write_finetune_part(table_file, vocab_json, codebook_npz, parts[-1], options)
    return parts


def write_finetune_data(token_table: str | os.PathLike, vocab_json: str | os.PathLike,
                        codebook_npz: str | os.PathLike, out_dir: str | os.PathLike,
                        options: FinetuneOptions = FinetuneOptions(), *, source: str = "fasta") -> dict[str, Any]:
    """The SFT folder of a whole token table (a Parquet file, or a folder of them such as the
    pipeline's ``tokens.parquet``): one part per file in a scratch folder, then :func:`assemble_finetune_data`."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.parts.", dir=out_dir.parent) as scratch:
        parts = write_finetune_parts(token_table, vocab_json, codebook_npz, scratch, options)
        return assemble_finetune_data(parts, vocab_json, codebook_npz, out_dir, options, source=source,
                                      token_table=token_table)


def verify_finetune_data(out_dir: str | os.PathLike, *, codebook_sha256: str | None = None,
                         model_name: str | None = None) -> dict[str, Any]:
    """Re-check an SFT folder against its manifest (file hashes, row counts, codebook, model); return it."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    for key, expected in (("codebook_sha256", codebook_sha256), ("model_name", model_name)):
        if expected is not None and manifest[key] != expected:
            raise ValueError(f"{out_dir}/manifest.json: {key} is {manifest[key]}, expected {expected}")
    for split, info in manifest["splits"].items():
        for entry in info["files"]:
            path = out_dir / entry["path"]
            if not path.exists() or file_sha256(path) != entry["sha256"]:
                raise ValueError(f"{path}: missing or changed since {out_dir}/manifest.json was written")
            if pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
                raise ValueError(f"{path}: row count differs from {out_dir}/manifest.json")
    return manifest
