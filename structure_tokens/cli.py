"""structure-tokens command line: tokenize, decode, extend a tokenizer, build SFT data, show a run's
time per rule (no Snakemake)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from structure_tokens.embed.options import DEVICES
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.manifest import ManifestWriter
from structure_tokens.formats.vocab import FORMATS
from structure_tokens.inputs.records import InputRecord
from structure_tokens.inputs.validate import LONG_POLICIES, Verdict
from structure_tokens.llm.options import DEFAULT_FRACTIONS, SPLIT_METHODS, TARGETS, FinetuneOptions


def parse_fractions(text: str) -> dict[str, float]:
    """``train=0.9,validation=0.05,test=0.05`` -> dict, in the given order."""
    try:
        return {name.strip(): float(value) for name, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"fractions {text!r} must look like train=0.9,validation=0.05,test=0.05")


def embed_options(args: argparse.Namespace):
    """Embedding options from ``--device``/``--layer``/``--long-policy`` (defaults of EmbedOptions otherwise)."""
    from structure_tokens.embed.options import EmbedOptions

    given = {"device": args.device, "layer": args.layer, "long_policy": args.long_policy}
    return EmbedOptions(**{key: value for key, value in given.items() if value is not None})


class ResidueBar:
    """A tqdm bar of residues embedded, only when stderr is a terminal (not in logs or pipes)."""

    def __init__(self):
        self.bar = None

    def __enter__(self) -> "ResidueBar":
        return self

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            if not sys.stderr.isatty():
                return
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="res", unit_scale=True, desc="embedding", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


SKIPPED_SHOWN = 20  # skipped records printed on stderr; all of them are in the skipped-records file


def skipped_records_path(out: str | os.PathLike) -> Path:
    """``new_tokens.skipped.tsv`` next to ``--out new_tokens.jsonl``."""
    return Path(out).with_suffix(".skipped.tsv")


def write_skipped_records(path: Path, skipped: list[tuple[InputRecord, Verdict]]) -> None:
    """The skipped records and their reasons, in the columns of `prepare`'s ``manifest.tsv``."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        manifest = ManifestWriter(handle)
        for record, verdict in skipped:
            manifest.write(record.source, record.record_index, record.input_id, "skipped", verdict.reason,
                           sequence_hash=verdict.digest, length="" if verdict.length is None else verdict.length)


def run_tokenize(args: argparse.Namespace) -> None:
    from structure_tokens.api import StructureTokenizer
    from structure_tokens.inputs.readers import read_fasta

    tokenizer = StructureTokenizer.from_files(args.checkpoint, args.codebook, embed_options(args))
    if args.fasta:
        records = read_fasta(args.fasta)
    else:
        records = [InputRecord("--sequence", i, f"seq{i}", sequence) for i, sequence in enumerate(args.sequence)]
    started = time.perf_counter()
    with ResidueBar() as bar:
        result = tokenizer.tokenize_records(records, progress=bar.update)
    seconds = time.perf_counter() - started
    skipped_path = skipped_records_path(args.out)
    write_skipped_records(skipped_path, result.skipped)
    for record, verdict in result.skipped[:SKIPPED_SHOWN]:
        print(f"skipped {record.source} record {record.record_index} ({record.input_id}): {verdict.reason}",
              file=sys.stderr)
    if len(result.skipped) > SKIPPED_SHOWN:
        print(f"... and {len(result.skipped) - SKIPPED_SHOWN} more skipped records", file=sys.stderr)
    if not result.proteins:
        raise ValueError(f"no record of {args.fasta or '--sequence'} can be tokenized "
                         f"({len(result.skipped)} skipped, reasons in {skipped_path})")
    proteins = result.proteins
    residues = sum(len(protein.sequence) for protein in proteins)
    with atomic_output(args.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for protein in proteins:
            handle.write(json.dumps({"id": protein.id, "sequence": protein.sequence,
                                     "structure_tokens": protein.structure_tokens.tolist(),
                                     "text": tokenizer.render(protein, args.format)}) + "\n")
    if args.vocab:
        from structure_tokens.formats.vocab import write_vocab

        write_vocab(args.vocab, tokenizer.codebook.k, args.vocab_offset, tokenizer.codebook.sha256)
    print(f"{len(proteins)} proteins, {residues} residues in {seconds:.1f} s ({residues / seconds:.0f} residues/s) "
          f"on {tokenizer.embedder.device} -> {args.out}; {len(result.skipped)} records skipped -> {skipped_path}",
          file=sys.stderr)


def run_decode(args: argparse.Namespace) -> None:
    from structure_tokens.api import decode

    vocab = json.loads(Path(args.vocab).read_text(encoding="utf-8-sig"))
    text = sys.stdin.read().removeprefix("\ufeff") if args.text == "-" else args.text
    print(decode(text, vocab))


def run_extend_tokenizer(args: argparse.Namespace) -> None:
    from structure_tokens.llm.hf_tokenizer import MAPPING_FILE, extend_and_save

    mapping = extend_and_save(args.tokenizer, args.vocab, args.out, combined=args.combined)
    print(f"{len(mapping.tokenizer_ids) + len(mapping.combined_tokens)} protein tokens; tokenizer and "
          f"{MAPPING_FILE} -> {args.out}", file=sys.stderr)


def run_finetune_data(args: argparse.Namespace) -> None:
    from structure_tokens.llm.finetune import write_finetune_data

    options = FinetuneOptions(format=args.format, target=args.target, instruction=args.instruction,
                              split_method=args.split_method,
                              clusters_tsv=args.clusters, fractions=args.fractions, seed=args.seed,
                              rows_per_shard=args.rows_per_shard, jsonl=not args.no_jsonl)
    manifest = write_finetune_data(args.tokens, args.vocab, args.codebook, args.out, options)
    print(json.dumps({split: info["examples"] for split, info in manifest["splits"].items()}), file=sys.stderr)


def run_run_times(args: argparse.Namespace) -> None:
    from structure_tokens.report.run_times import BENCHMARKS_FOLDER, format_rule_times, rule_times

    folder = Path(args.output_dir) / BENCHMARKS_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder} (the workflow's benchmark files; is {args.output_dir} "
                                "the output_dir of a run?)")
    table = rule_times(folder)
    if table.empty:
        print(f"no benchmark file in {folder} yet", file=sys.stderr)
    sys.stdout.write(format_rule_times(table, args.format))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structure-tokens", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    tokenize = commands.add_parser("tokenize", help="structure tokens of new sequences (JSON lines)")
    tokenize.add_argument("--checkpoint", required=True, help="fair-esm ESM-2 .pt checkpoint")
    tokenize.add_argument("--codebook", required=True, help="codebook_K*.npz trained on that model")
    source = tokenize.add_mutually_exclusive_group(required=True)
    source.add_argument("--fasta", help="FASTA file (.gz allowed)")
    source.add_argument("--sequence", action="append", help="a sequence (repeatable)")
    tokenize.add_argument("--out", required=True, help="output .jsonl: id, sequence, structure_tokens, text; the "
                          "records skipped (as `prepare` skips them) and why go to OUT.skipped.tsv")
    tokenize.add_argument("--format", choices=FORMATS, default="interleaved", help="rendering of `text`")
    tokenize.add_argument("--vocab", help="also write vocab.json here")
    tokenize.add_argument("--vocab-offset", type=int, default=0,
                          help="id of the first vocabulary token, as llm.vocab_offset (default: 0)")
    tokenize.add_argument("--device", choices=DEVICES, help="as model.device (default: auto, CUDA when available)")
    tokenize.add_argument("--layer", type=int, help="must be the codebook's layer (default: the model's)")
    tokenize.add_argument("--long-policy", choices=LONG_POLICIES,
                          help="proteins over 1022 residues (default: windows); as `model.long_policy`")
    tokenize.set_defaults(run=run_tokenize)

    decode = commands.add_parser("decode", help="amino-acid sequence of an added-token stream")
    decode.add_argument("--vocab", required=True, help="vocab.json")
    decode.add_argument("text", help="text with <aa:M><S012>... tokens, or - for stdin")
    decode.set_defaults(run=run_decode)

    extend = commands.add_parser("extend-tokenizer", help="add protein tokens to a local HF tokenizer")
    extend.add_argument("--tokenizer", required=True, help="folder of a saved transformers tokenizer")
    extend.add_argument("--vocab", required=True, help="vocab.json")
    extend.add_argument("--out", required=True, help="folder for the extended tokenizer and the mapping")
    extend.add_argument("--combined", action="store_true", help="also add SaProt-style <M|S012> tokens (20*k)")
    extend.set_defaults(run=run_extend_tokenizer)

    finetune = commands.add_parser("finetune-data", help="SFT Parquet shards + manifest from tokens.parquet")
    finetune.add_argument("--tokens", required=True, help="tokens.parquet (the pipeline's folder, or one file)")
    finetune.add_argument("--vocab", required=True, help="vocab.json")
    finetune.add_argument("--codebook", required=True, help="codebook_K*.npz")
    finetune.add_argument("--out", required=True, help="output folder")
    finetune.add_argument("--format", choices=FORMATS, default=FinetuneOptions.format,
                          help=f"how proteins are rendered, as finetune.format (default: {FinetuneOptions.format})")
    finetune.add_argument("--target", choices=TARGETS, default=FinetuneOptions.target,
                          help="record text used as the completion")
    finetune.add_argument("--instruction", default=FinetuneOptions.instruction,
                          help="instruction for proteins whose source had none")
    finetune.add_argument("--split-method", choices=SPLIT_METHODS, default=FinetuneOptions.split_method,
                          help=f"as finetune.split_method (default: {FinetuneOptions.split_method})")
    finetune.add_argument("--clusters", help="cluster TSV (representative, member) for --split-method clusters")
    finetune.add_argument("--fractions", type=parse_fractions, default=dict(DEFAULT_FRACTIONS),
                          help="e.g. train=0.9,validation=0.05,test=0.05")
    finetune.add_argument("--seed", type=int, default=FinetuneOptions.seed,
                          help=f"seed of the split, as finetune.seed (default: {FinetuneOptions.seed})")
    finetune.add_argument("--rows-per-shard", type=int, default=FinetuneOptions.rows_per_shard,
                          help=f"rows per Parquet file (default: {FinetuneOptions.rows_per_shard})")
    finetune.add_argument("--no-jsonl", action="store_true", help="Parquet shards only")
    finetune.set_defaults(run=run_finetune_data)

    times = commands.add_parser(
        "run-times", help="time and memory per rule of a run, from its job_benchmarks/ files as they are now",
        description="Jobs, wall seconds (total and longest job), CPU seconds and peak sampled memory (MiB) "
        "per rule, from the Snakemake benchmark files OUTPUT_DIR/job_benchmarks/<rule>[/<shard>].tsv of the "
        "jobs finished so far (also during a run).")
    times.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's output_dir (e.g. results)")
    times.add_argument("--format", choices=["markdown", "tsv"], default="markdown",
                       help="markdown: a rounded table to read or paste (default); tsv: tab-separated, full "
                       "precision, empty cells where nothing was measured")
    times.set_defaults(run=run_run_times)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``structure-tokens``; errors are one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"structure-tokens {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
