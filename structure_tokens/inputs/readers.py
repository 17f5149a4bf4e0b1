"""Streaming readers of every supported input: each yields :class:`InputRecord` one at a time."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import zlib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import IO, Iterator

from structure_tokens.inputs.records import InputRecord

SOURCES = ("demo", "fasta", "uniprot", "proteinlmbench")
DEMO_FILE = "demo_swissprot.dat.gz"
UNIPROT_HEADER = re.compile(r"^(?:sp|tr)\|([^|]+)\|")
EVIDENCE_TAG = re.compile(r"\s*\{ECO:[^}]*\}")
PROTEIN_NAME = re.compile(r"(?:RecName|SubName):\s*Full=([^;{]+)")
SEQ_TAG = re.compile(r"<seq>(.*?)</seq>", re.IGNORECASE | re.DOTALL)
FUNCTION_PREFIX = re.compile(
    r"^\s*the\s+(?:determined\s+|predicted\s+|putative\s+)?functions?(?:\(s\))?\s+of\s+(?:the|this)\s+"
    r"protein\s+(?:includes?|is|are)(?:\(s\))?\s*:\s*",
    re.IGNORECASE,
)


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a plain or gzip-compressed (``.gz``) UTF-8 text file; a leading byte-order mark is dropped.

    Undecodable bytes become U+FFFD: validation rejects them in ids and sequences and notes them
    in descriptions, naming the record. A truncated or corrupt ``.gz`` raises ``ValueError``
    naming the file (see :func:`decompression_errors`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


@contextlib.contextmanager
def decompression_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn gzip's errors on a truncated or corrupt file into a ``ValueError`` that names it."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({error})") from error


def read_fasta(path: str | os.PathLike) -> Iterator[InputRecord]:
    """FASTA records (plain or .gz): id = first header word (the accession of ``sp|``/``tr|`` headers),
    description = the rest of the header.

    Sequence lines before the first header raise ``ValueError`` naming the file and line (they
    belong to no record). A header without an id gives a record with an empty id, and a header
    without sequence lines one with ``sequence=None``; validation skips both with a reason.
    """
    source = str(path)
    header: str | None = None
    lines: list[str] = []
    index = 0

    def record() -> InputRecord:
        first, rest = (header.split(maxsplit=1) + ["", ""])[:2]
        uniprot = UNIPROT_HEADER.match(first)
        return InputRecord(source, index, uniprot.group(1) if uniprot else first,
                           "".join(lines) if lines else None, rest.strip())

    with open_text(path) as handle, decompression_errors(path):
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


def protein_name(description: str) -> str:
    """The protein name of a ``DE`` block: ``RecName``/``SubName`` ``Full=``, or pre-2008 free text."""
    name = PROTEIN_NAME.search(description)
    if name:
        return EVIDENCE_TAG.sub("", name.group(1)).strip()
    if "Name:" in description:  # structured DE lines without a full name
        return ""
    return description.split(" (", 1)[0].strip().rstrip(".")


def read_uniprot(path: str | os.PathLike) -> Iterator[InputRecord]:
    """Swiss-Prot/UniProt flat-file entries (plain or .gz), parsed with Biopython.

    id = primary accession, description = protein name, function = the ``CC -!- FUNCTION:`` text.
    """
    from Bio import SwissProt

    source = str(path)
    with open_text(path) as handle, decompression_errors(path):
        records = SwissProt.parse(handle)
        index = 0
        while True:
            try:
                entry = next(records)
            except StopIteration:
                return
            except (EOFError, gzip.BadGzipFile, zlib.error):
                raise
            except Exception as error:  # Biopython raises ValueError/SwissProtParserError
                raise ValueError(f"{source}: cannot parse UniProt entry number {index + 1}: {error}") from error
            yield InputRecord(source, index, entry.accessions[0] if entry.accessions else "",
                              entry.sequence or None, protein_name(entry.description), function_text(entry.comments))
            index += 1


def read_demo() -> Iterator[InputRecord]:
    """The embedded demo set: 100 Swiss-Prot entries (see ``structure_tokens/data/NOTICE.md``)."""
    with resources.as_file(resources.files("structure_tokens.data") / DEMO_FILE) as path:
        for record in read_uniprot(path):
            yield replace(record, source=f"demo:{DEMO_FILE}")


PROTEINLMBENCH_COLUMNS = ("instruction", "input", "output")


def proteinlmbench_record(row: dict, index: int, source: str, split: str) -> InputRecord:
    """One ProteinLMBench row: sequence inside ``<seq>..</seq>`` of ``input``, function in ``output``."""
    if not isinstance(row, dict) or not {"input", "output"} <= row.keys():
        found = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ValueError(f"{source}: row {index} is not a ProteinLMBench record "
                         f"(expected columns {PROTEINLMBENCH_COLUMNS}, found {found})")
    text = str(row["input"] or "")
    tagged = SEQ_TAG.search(text)
    sequence = (tagged.group(1) if tagged else text) or None
    record_id = next((row[key] for key in ("id", "accession") if row.get(key) not in (None, "")),
                     f"plmb_{split}_{index:07d}")
    return InputRecord(source, index, str(record_id), sequence, "",
                       FUNCTION_PREFIX.sub("", str(row["output"] or "")).strip(),
                       str(row.get("instruction") or ""))


def iter_json_lines(path: Path) -> Iterator[dict]:
    """Objects of a JSON-lines file, one per non-blank line."""
    with open_text(path) as handle, decompression_errors(path):
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}: line {line_number}: invalid JSON ({error})") from error


def starts_with_array(path: Path) -> bool:
    """Whether a ``.json`` file holds one JSON array (else it is read as JSON lines)."""
    with open_text(path) as handle, decompression_errors(path):
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("[")
    return False


def iter_local_rows(path: Path) -> Iterator[dict]:
    """Rows of a local ProteinLMBench export: ``.jsonl``, ``.json`` or ``.parquet`` (``.gz`` for JSON).

    ``.json`` may hold one array (as the dataset's own files; loaded whole) or JSON lines (as
    ``datasets.Dataset.to_json`` writes; streamed). Parquet is streamed in record batches.
    """
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl") or (name.endswith(".json") and not starts_with_array(path)):
        yield from iter_json_lines(path)
    elif name.endswith(".json"):
        with open_text(path) as handle, decompression_errors(path):
            rows = json.load(handle)
        yield from rows
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
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
    check_source(source, path, proteinlmbench)
    if source == "demo":
        return read_demo()
    if source == "proteinlmbench":
        return read_proteinlmbench(path, **dict(proteinlmbench or {}))
    return read_fasta(path) if source == "fasta" else read_uniprot(path)


def check_source(source: str, path: str | None = None, proteinlmbench: dict | None = None) -> None:
    """Raise ``ValueError`` naming the config key when ``input.source``/``path``/``proteinlmbench`` don't fit."""
    if source not in SOURCES:
        raise ValueError(f"unknown input.source {source!r}; expected one of {SOURCES}")
    unknown = sorted(set(proteinlmbench or {}) - {"repo_id", "subset", "split", "cache_dir"})
    if unknown:
        raise ValueError(f"unknown input.proteinlmbench keys {unknown}; expected repo_id, subset, split, cache_dir")
    if source in ("fasta", "uniprot") and not path:
        raise ValueError(f"input.source {source!r} needs input.path")
