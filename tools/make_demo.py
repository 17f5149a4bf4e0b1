"""Derive the embedded demo set from a Debian-sourced Swiss-Prot file (kept for provenance).

  python tools/make_demo.py ../shared/data/sequences/emboss_test_swissprot_seq.dat [OUT]

Keeps every entry but only the lines the pipeline reads (identification, names, organism,
comments, sequence), gzip-compressed into structure_tokens/data/demo_swissprot.dat.gz (or OUT).
The output is byte-for-byte reproducible.
"""

import gzip
import os
import sys
from pathlib import Path

from structure_tokens.formats.atomic import atomic_output

KEPT_LINE_TYPES = ("ID", "AC", "DE", "GN", "OS", "OX", "CC", "SQ", "  ", "//")
OUT = Path(__file__).resolve().parents[1] / "structure_tokens" / "data" / "demo_swissprot.dat.gz"


def derive(source: str | os.PathLike, out: str | os.PathLike = OUT) -> int:
    """Write the reduced, compressed copy of the flat file ``source`` (plain or .gz) to ``out``; return its
    entry count."""
    raw = Path(source).read_bytes()
    text = (gzip.decompress(raw) if str(source).endswith(".gz") else raw).decode()
    lines = [line for line in text.splitlines(keepends=True) if line[:2] in KEPT_LINE_TYPES]
    with atomic_output(out) as tmp, open(tmp, "wb") as raw:
        # a fixed name and mtime=0 keep the gzip header, and so the file, reproducible
        with gzip.GzipFile(filename=OUT.name, mode="wb", fileobj=raw, compresslevel=9, mtime=0) as handle:
            handle.write("".join(lines).encode())
    return sum(line.startswith("//") for line in lines)


if __name__ == "__main__":
    target = sys.argv[2] if len(sys.argv) > 2 else OUT
    print(f"{target}: {derive(sys.argv[1], target)} entries")
