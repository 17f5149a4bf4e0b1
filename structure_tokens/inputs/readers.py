"""Streaming readers of every supported input: each yields :class:`InputRecord` one at a time."""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import IO, Iterator

from structure_tokens.inputs.records import InputRecord

SOURCES = ("demo", "fasta", "uniprot", "proteinlmbench")
DEMO_FILE = "demo_swissprot.dat.gz"
UNIPROT_HEADER = re.compile(r"^(?:sp|tr)\|([^|]+)\|")
EVIDENCE_TAG = re.compile(r"\s*\{ECO:[^}]*\}")
RECNAME_FULL = re.compile(r"RecName:\s*Full=([^;{]+)")
SEQ_TAG = re.compile(r"<seq>(.*?)</seq>", re.IGNORECASE | re.DOTALL)
FUNCTION_PREFIX = re.compile(
    r"^\s*the\s+(?:determined\s+|predicted\s+|putative\s+)?functions?(?:\(s\))?\s+of\s+(?:the|this)\s+"
    r"protein\s+(?:includes?|is|are)(?:\(s\))?\s*:\s*",
    re.IGNORECASE,
)


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a plain or gzip-compressed text file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_fasta(path: str | os.PathLike) -> Iterator[InputRecord]:
    """FASTA records (plain or .gz): id = first header word (the accession of ``sp|``/``tr|`` headers),
    description = the rest of the header."""
    source = str(path)
    header: str | None = None
    lines: list[str] = []
    index = 0

    def record() -> InputRecord:
        first, rest = (header.split(maxsplit=1) + ["", ""])[:2]
        uniprot = UNIPROT_HEADER.match(first)
        return InputRecord(source, index, uniprot.group(1) if uniprot else first,
                           "".join(lines) if lines else None, rest.strip())

    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.startswith(">"):
                if header is not None:
                    yield record()
                    index += 1
                header, lines = line[1:], []
            elif line.strip():
                if header is None:
                    raise ValueError(f"{source}: line {line_number}: sequence data before the first '>' header")
                lines.append(line.strip())
    if header is not None:
        yield record()


def function_text(comments: list[str]) -> str:
    """The ``FUNCTION:`` comments of a UniProt entry, without evidence tags, whitespace collapsed."""
    texts = [EVIDENCE_TAG.sub("", c.split(":", 1)[1]) for c in comments if c.startswith("FUNCTION:")]
    return " ".join(" ".join(texts).split())


def read_uniprot(path: str | os.PathLike) -> Iterator[InputRecord]:
    """Swiss-Prot/UniProt flat-file entries, parsed with Biopython."""
    from Bio import SwissProt

    source = str(path)
    with open_text(path) as handle:
        records = SwissProt.parse(handle)
        index = 0
        while True:
            try:
                entry = next(records)
            except StopIteration:
                return
            except Exception as error:  # Biopython raises ValueError/SwissProtParserError
                raise ValueError(f"{source}: cannot parse UniProt entry number {index + 1}: {error}") from error
            name = RECNAME_FULL.search(entry.description)
            yield InputRecord(source, index, entry.accessions[0] if entry.accessions else "",
                              entry.sequence or None, EVIDENCE_TAG.sub("", name.group(1)).strip() if name else "",
                              function_text(entry.comments))
            index += 1


def read_demo() -> Iterator[InputRecord]:
    """The embedded demo set: 100 Swiss-Prot entries (see ``structure_tokens/data/NOTICE.md``)."""
    with resources.as_file(resources.files("structure_tokens.data") / DEMO_FILE) as path:
        for record in read_uniprot(path):
            yield replace(record, source=f"demo:{DEMO_FILE}")


def proteinlmbench_record(row: dict, index: int, source: str, split: str) -> InputRecord:
    """One ProteinLMBench row: sequence inside ``<seq>..</seq>`` of ``input``, function in ``output``."""
    text = str(row.get("input") or "")
    tagged = SEQ_TAG.search(text)
    sequence = (tagged.group(1) if tagged else text) or None
    record_id = row.get("id") or row.get("accession") or f"plmb_{split}_{index:07d}"
    return InputRecord(source, index, str(record_id), sequence, "",
                       FUNCTION_PREFIX.sub("", str(row.get("output") or "")).strip(),
                       str(row.get("instruction") or ""))


def iter_local_rows(path: Path) -> Iterator[dict]:
    """Rows of a local ProteinLMBench export: ``.jsonl``, ``.json`` (list) or ``.parquet``."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        with open_text(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{path}: line {line_number}: invalid JSON ({error})") from error
    elif name.endswith(".json"):
        with open_text(path) as handle:
            rows = json.load(handle)
        yield from rows if isinstance(rows, list) else rows["data"]
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"{path}: unsupported ProteinLMBench file (use .json, .jsonl or .parquet)")


def read_proteinlmbench(path: str | os.PathLike | None = None, repo_id: str = "tsynbio/ProteinLMBench",
                        subset: str = "UniProt_Function", split: str = "train",
                        cache_dir: str | None = None) -> Iterator[InputRecord]:
    """ProteinLMBench records from a local export, or downloaded with the Hugging Face client."""
    if path is not None:
        rows, source = iter_local_rows(Path(path)), str(path)
    else:
        source = f"hf://{repo_id}/{subset}/{split}"
        try:
            import datasets

            rows = iter(datasets.load_dataset(repo_id, subset, split=split, cache_dir=cache_dir))
        except Exception as error:
            raise RuntimeError(
                f"cannot load {repo_id} (subset {subset}, split {split}) from the Hugging Face hub: {error}. "
                "Install `datasets` and check the network, or export the dataset to a local .json/.jsonl/"
                ".parquet file with columns instruction, input, output and set input.path to it."
            ) from error
    for index, row in enumerate(rows):
        yield proteinlmbench_record(row, index, source, split)


def open_source(source: str, path: str | None = None, proteinlmbench: dict | None = None) -> Iterator[InputRecord]:
    """Records of the configured ``input.source``."""
    if source not in SOURCES:
        raise ValueError(f"unknown input.source {source!r}; expected one of {SOURCES}")
    if source == "demo":
        return read_demo()
    if source == "proteinlmbench":
        options = {k: v for k, v in (proteinlmbench or {}).items() if k in ("repo_id", "subset", "split", "cache_dir")}
        return read_proteinlmbench(path, **options)
    if not path:
        raise ValueError(f"input.source {source!r} needs input.path")
    return read_fasta(path) if source == "fasta" else read_uniprot(path)
