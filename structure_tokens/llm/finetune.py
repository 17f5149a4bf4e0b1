"""Instruction-tuning data from ``tokens.parquet``: rendered proteins, leak-free splits, Parquet shards.

Layout of the output folder (``sft/``)::

    README.md                     dataset card (Hugging Face format, ``llm.dataset_card``)
    manifest.json                 counts, token stats, codebook hash, model name, file hashes
    data/train-00000.parquet ...  one folder of shards: datasets.load_dataset("parquet", data_dir=...)
    data/validation-00000.parquet, data/test-00000.parquet
    jsonl/train.jsonl ...         the same rows as JSON lines (optional)

Every row is one protein with a non-empty target text: ``id, aliases, split, instruction,
protein, prompt, completion, n_residues``. ``protein`` is the structure-aware stream in
one of :data:`FORMATS`, written with the added-token strings of
:mod:`structure_tokens.hf_tokenizer`; ``prompt`` is ``prompt_template`` filled with the
instruction and the protein; ``completion`` is the target (the protein's function text).

Splits are drawn per *group*: a protein's group is its exact sequence (``split_method:
sequence``) or its cluster in an MMseqs2-style cluster TSV (``split_method: clusters``). The
split of a group is a seeded hash of its key, so identical sequences (or cluster members) never
land in two splits, and a protein keeps its split when proteins are added to the input.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from array import array
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.vocab import protein_token_count, render_protein
from structure_tokens.llm.dataset_card import write_dataset_card
from structure_tokens.llm.options import FinetuneOptions

MANIFEST_FORMAT_VERSION = 1
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


def read_clusters(path: str | os.PathLike) -> dict[str, str]:
    """Member id -> representative id from a two-column TSV (``mmseqs createtsv`` / ``easy-cluster``)."""
    clusters: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if len(row) != 2:
                raise ValueError(f"{path}: line {line_number} has {len(row)} columns, "
                                 "expected 2 (representative, member)")
            representative, member = row
            clusters[member] = representative
            clusters.setdefault(representative, representative)
    return clusters


def group_key(row: Mapping[str, Any], clusters: Mapping[str, str] | None, clusters_path: str | None) -> str:
    """The split group of a ``tokens.parquet`` row: its sequence, or its cluster representative."""
    if clusters is None:
        return "sequence:" + row["sequence"]
    for name in (row["id"], *row["aliases"]):
        if name in clusters:
            return "cluster:" + clusters[name]
    raise ValueError(f"{clusters_path}: protein {row['id']} (aliases {list(row['aliases'])}) is in no cluster; "
                     "re-run the clustering on the current proteins")


class _ShardWriter:
    """Rows of one split, written as ``<split>-NNNNN.parquet`` every ``rows_per_shard`` rows."""

    def __init__(self, folder: Path, split: str, rows_per_shard: int):
        self.folder, self.split, self.rows_per_shard = folder, split, rows_per_shard
        self.rows: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        path = self.folder / f"{self.split}-{len(self.files):05d}.parquet"
        with atomic_output(path) as tmp:
            pq.write_table(pa.Table.from_pylist(self.rows, schema=SFT_SCHEMA), tmp)
        self.files.append({"path": f"data/{path.name}", "rows": len(self.rows), "sha256": file_sha256(path)})
        self.rows = []


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_token_rows(tokens_parquet: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Rows of ``tokens.parquet`` one row group at a time (memory holds one shard)."""
    parquet = pq.ParquetFile(tokens_parquet)
    for group in range(parquet.num_row_groups):
        yield from parquet.read_row_group(group).to_pylist()


def _stats(values: Sequence[int]) -> dict[str, float]:
    if not len(values):
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(min(values)), "mean": float(np.mean(values)), "max": int(max(values))}


def write_finetune_data(tokens_parquet: str | os.PathLike, vocab_json: str | os.PathLike,
                        codebook_npz: str | os.PathLike, out_dir: str | os.PathLike,
                        options: FinetuneOptions = FinetuneOptions(), *, source: str = "fasta") -> dict[str, Any]:
    """Render every protein with a target into SFT rows, split them, write shards, ``manifest.json``
    and a dataset card ``README.md`` (its licence and attribution follow ``source``, the config's
    ``input.source``).

    Uses ``tokens.parquet``'s ``instruction`` column when it has one and the row's value is not
    empty, else ``options.instruction``. Rows without function text are counted, not written.
    """
    vocab = json.loads(Path(vocab_json).read_text())
    codebook = Codebook.load(codebook_npz)
    if vocab.get("codebook_sha256") != codebook.sha256:
        raise ValueError(f"{vocab_json} was written for codebook {vocab.get('codebook_sha256')}, "
                         f"not for {codebook_npz} ({codebook.sha256})")
    clusters = read_clusters(options.clusters_tsv) if options.split_method == "clusters" else None
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob("*.parquet"):
        stale.unlink()
    split_names = list(options.fractions)
    writers = {split: _ShardWriter(data_dir, split, options.rows_per_shard) for split in split_names}
    # per-example lengths as compact int64 arrays (8 bytes per example, not a Python int each)
    residues = {split: array("q") for split in split_names}
    target_chars = {split: array("q") for split in split_names}
    groups: dict[str, set[str]] = {split: set() for split in split_names}
    structure_usage = np.zeros(codebook.k, dtype=np.int64)
    n_read = n_without_target = 0
    with ExitStack() as stack:
        jsonl_paths = {split: out_dir / "jsonl" / f"{split}.jsonl" for split in split_names} if options.jsonl else {}
        jsonl = {split: stack.enter_context(open(stack.enter_context(atomic_output(path)), "w", encoding="utf-8"))
                 for split, path in jsonl_paths.items()}
        for row in iter_token_rows(tokens_parquet):
            n_read += 1
            target = (row.get("function") or "").strip()
            if not target:
                n_without_target += 1
                continue
            key = group_key(row, clusters, options.clusters_tsv)
            split = split_of(key, options.seed, options.fractions)
            try:
                protein = render_protein(row["sequence"], row["structure_tokens"], vocab, options.format)
            except ValueError as error:
                raise ValueError(f"{tokens_parquet}: protein {row['id']}: {error}") from None
            instruction = (row.get("instruction") or "").strip() or options.instruction
            sft_row = {"id": row["id"], "aliases": list(row["aliases"]), "split": split,
                       "instruction": instruction, "protein": protein,
                       "prompt": options.prompt_template.format(instruction=instruction, protein=protein),
                       "completion": target, "n_residues": len(row["sequence"])}
            writers[split].add(sft_row)
            if split in jsonl:
                jsonl[split].write(json.dumps(sft_row) + "\n")
            residues[split].append(len(row["sequence"]))
            target_chars[split].append(len(target))
            groups[split].add(key)
            structure_usage += np.bincount(row["structure_tokens"], minlength=codebook.k)
        for writer in writers.values():
            writer.flush()
    splits = {
        split: {
            "examples": len(residues[split]), "groups": len(groups[split]), "residues": int(sum(residues[split])),
            "protein_tokens": _stats(array("q", (protein_token_count(n, options.format)
                                                 for n in residues[split]))),
            "target_chars": _stats(target_chars[split]), "files": writers[split].files,
            **({"jsonl": {"path": f"jsonl/{split}.jsonl", "sha256": file_sha256(jsonl_paths[split])}}
               if options.jsonl else {}),
        }
        for split in split_names
    }
    manifest = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": {"tokens_parquet": str(tokens_parquet), "tokens_parquet_sha256": file_sha256(tokens_parquet)},
        "model_name": codebook.model_name, "layer": codebook.layer,
        "codebook_sha256": codebook.sha256, "k": codebook.k, "vocab_offset": vocab["vocab_offset"],
        "format": options.format, "combined_tokens_needed": options.format == "combined",
        "instruction_default": options.instruction, "prompt_template": options.prompt_template,
        "split": {"method": options.split_method, "clusters_tsv": options.clusters_tsv,
                  "seed": options.seed, "fractions": dict(options.fractions)},
        "counts": {"proteins_read": n_read, "without_target": n_without_target,
                   "examples": n_read - n_without_target},
        "structure_tokens_used": int(np.count_nonzero(structure_usage)),
        "data_files": {split: [f["path"] for f in info["files"]] for split, info in splits.items()},
        "splits": splits,
    }
    with atomic_output(out_dir / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n")
    write_dataset_card(out_dir, manifest, source)
    return manifest


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
