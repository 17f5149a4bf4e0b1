"""Scale benchmark: the real workflow on growing inputs; flat memory per rule, disk per protein,
and the 1M-protein plan.

  python benchmarks/scale.py --sizes 1000 5000 20000 --modes keep one-pass --synthetic 1000000 --out docs/scale.json

Part 1 runs the whole pipeline (tiny random ESM-2 on CPU, K=64) on the first N real proteins of
`../shared/data/sequences/mmseqs2_examples_DB.fasta.gz`, keeping embeddings and in one-pass
mode (`keep_embeddings: false`, 2 training shards), and reads every job's Snakemake
`benchmark:` file (wall time, peak RSS). Part 2 writes a synthetic FASTA of 1M proteins (lengths
drawn from the real distribution), runs only `prepare`, then times `snakemake -n` of the full run.
Not a test: it reports what it measured.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint
from structure_tokens.inputs.readers import read_fasta
from structure_tokens.workflow_logging import PEAK_RSS_MESSAGE

REPO = Path(__file__).resolve().parents[1]
REAL_FASTA = REPO.parent / "shared/data/sequences/mmseqs2_examples_DB.fasta.gz"
AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def snakemake(workdir: Path, config: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(workdir), "--configfile", str(config), *args],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-5000:])
    return time.perf_counter() - start, result.stdout + result.stderr


def write_config(workdir: Path, fasta: Path, checkpoint: Path | None, **extra) -> Path:
    """The benchmark's config; ``extra`` keys replace top-level values and update nested sections."""
    config = {"input": {"source": "fasta", "path": str(fasta), "shard_size": 1000},
              "model": {"device": "cpu", "token_budget": 8192},
              "codebook": {"k": 64, "sample_per_shard": 5000, "max_train_residues": 50000, "max_iter": 20}}
    for key, value in extra.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    if checkpoint:
        config["model"]["checkpoint"] = str(checkpoint)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def first_records(n: int, out: Path) -> None:
    with gzip.open(REAL_FASTA, "rt") as source, open(out, "w") as target:
        count = 0
        for line in source:
            if line.startswith(">"):
                count += 1
                if count > n:
                    break
            target.write(line)


def rule_peaks(results: Path) -> dict[str, dict]:
    """Per rule: jobs and total seconds (``benchmark:`` files), and the largest peak RSS of its jobs.

    The peak RSS is the kernel's high-water mark that every job logs when it exits (exact, where
    the ``benchmark:`` files only sample memory about once a second); the sampled value is kept too.
    Per-shard rules also list each job's peak under ``job_peak_rss_mib`` (by shard).
    """
    peaks: dict[str, dict] = defaultdict(
        lambda: {"jobs": 0, "seconds": 0.0, "peak_rss_mib": 0.0, "sampled_max_rss_mb": 0.0})
    for tsv in (results / "job_benchmarks").rglob("*.tsv"):
        rule = tsv.parent.name if tsv.parent.name != "job_benchmarks" else tsv.stem
        row = pd.read_csv(tsv, sep="\t").iloc[0]
        peak = peaks[rule]
        peak["jobs"] += 1
        peak["seconds"] += float(row["s"])
        if row["max_rss"] != "-":
            peak["sampled_max_rss_mb"] = max(peak["sampled_max_rss_mb"], float(row["max_rss"]))
    pattern = re.compile(re.escape(PEAK_RSS_MESSAGE).replace("%\\.1f", r"([0-9.]+)"))
    for log in (results / "logs").rglob("*.log"):
        rule = log.parent.name if log.parent.name != "logs" else log.stem
        found = pattern.search(log.read_text())
        if found and rule in peaks:
            peak = float(found.group(1))
            peaks[rule]["peak_rss_mib"] = max(peaks[rule]["peak_rss_mib"], peak)
            if log.parent.name != "logs":
                peaks[rule].setdefault("job_peak_rss_mib", {})[log.stem] = peak
    return dict(peaks)


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else list(path.rglob("*"))
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


MODES = {"keep": {}, "one-pass": {"keep_embeddings": False, "codebook": {"train_shards": 2}}}


def real_run(n: int, mode: str, root: Path, checkpoint: Path) -> dict:
    """The whole workflow on the first ``n`` real records, keeping embeddings or in one-pass mode."""
    workdir = root / f"real_{n}_{mode}"
    workdir.mkdir()
    fasta = workdir / "input.fasta"
    first_records(n, fasta)
    seconds, _ = snakemake(workdir, write_config(workdir, fasta, checkpoint, **MODES[mode]), "--cores", "2")
    results = workdir / "results"
    summary = json.loads((results / "prepared/prepare_summary.json").read_text())
    manifest = pd.read_csv(results / "prepared/manifest.tsv", sep="\t")
    shard_residues = manifest[manifest["status"] == "kept"].groupby("shard")["length"].sum()
    return {"n_records": n, "mode": mode, "n_proteins": summary["n_proteins"], "n_residues": summary["n_residues"],
            "n_shards": summary["n_shards"], "wall_s": round(seconds, 1), "rules": rule_peaks(results),
            "shard_residues": {shard: int(residues) for shard, residues in shard_residues.items()},
            "disk_mb": {"embeddings": size_mb(results / "embeddings"), "tokens_h5": size_mb(results / "tokens"),
                        "tokens.parquet": size_mb(results / "tokens.parquet"),
                        "interleaved.jsonl": size_mb(results / "interleaved.jsonl")}}


def synthetic_plan(n: int, root: Path) -> dict:
    """1M synthetic proteins: prepare only, then the dry-run of the whole DAG."""
    workdir = root / "synthetic"
    workdir.mkdir()
    fasta = workdir / "input.fasta"
    lengths = np.array([len(r.sequence or "") for r in read_fasta(REAL_FASTA)])
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with open(fasta, "w") as out:
        for first in range(0, n, 10000):
            sizes = rng.choice(lengths, 10000)
            residues = AMINO[rng.integers(0, 20, sizes.sum())]
            ends = np.cumsum(sizes)
            out.write("".join(f">syn{first + i:07d}\n{''.join(residues[e - s:e])}\n"
                              for i, (s, e) in enumerate(zip(sizes, ends))))
    write_s = time.perf_counter() - start
    config = write_config(workdir, fasta, None, keep_embeddings=False, codebook={"k": 512, "train_shards": 20})
    prepare_s, _ = snakemake(workdir, config, "--cores", "2", "--until", "prepare")
    plan_s, plan = snakemake(workdir, config, "-n", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.MULTILINE))
    return {"n_records": n, "fasta_mb": size_mb(fasta), "write_fasta_s": round(write_s, 1),
            "prepare_s": round(prepare_s, 1),
            "prepare_peak_rss_mib": rule_peaks(workdir / "results")["prepare"]["peak_rss_mib"],
            "dry_run_s": round(plan_s, 1), "job_counts": {k: int(v) for k, v in counts.items()},
            "manifest_mb": size_mb(workdir / "results/prepared/manifest.tsv"),
            "shards_mb": size_mb(workdir / "results/prepared/shards")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    parser.add_argument("--modes", nargs="*", choices=list(MODES), default=list(MODES),
                        help="keep: embeddings kept (two passes); one-pass: keep_embeddings false")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    results: dict = {"real": [], "synthetic": None}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = write_random_esm2_checkpoint(root / "esm2_t2_32_tiny_random.pt")
        for mode in args.modes:
            for n in args.sizes:
                results["real"].append(real_run(n, mode, root, checkpoint))
                print(json.dumps(results["real"][-1]), flush=True)
        if args.synthetic:
            results["synthetic"] = synthetic_plan(args.synthetic, root)
            print(json.dumps(results["synthetic"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
