"""Scale benchmark: the real workflow on growing inputs; flat memory per rule, disk per protein,
the 1M-protein plan, and the steps after the tokens at 100k and 1M proteins.

  python benchmarks/scale.py --sizes 1000 5000 20000 --modes keep one-pass --synthetic 1000000 --out docs/scale.json
  python benchmarks/scale.py --sizes --synthetic 0 --tail 100000 1000000 --tail-many-shards 1000 10000 \
      --out docs/scale_tail.json

Part 1 runs the whole pipeline (tiny random ESM-2 on CPU, K=64) on the first N real proteins of
`../shared/data/sequences/mmseqs2_examples_DB.fasta.gz`, keeping embeddings and in one-pass
mode (`keep_embeddings: false`, 2 training shards), and reads every job's Snakemake
`benchmark:` file (wall time, peak RSS). Part 2 writes a synthetic FASTA of 1M proteins (lengths
drawn from the real distribution), runs only `prepare`, then times `snakemake -n` of the full run.
Part 3 (``--tail``) measures every rule after the tokens, on a CPU: it writes what the GPU jobs
of a one-pass run would have left (shard tables of synthetic proteins with function text, lengths
drawn from the real distribution; token shards written with the project's own ``TokenWriter``;
the training shards' embeddings, a K=512 codebook and the throughput files), then runs each rule
alone with Snakemake (its outputs as targets, 2 cores) and reads every job's wall time and exact peak RSS.
``--tail-many-shards`` times the rules that wait for the last shard at 1,000 or 10,000 shards (10
proteins each; the per-shard outputs made in-process by the same functions as the jobs).
Not a test: it reports what it measured.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint  # noqa: E402
from structure_tokens.formats.codebook import Codebook  # noqa: E402
from structure_tokens.formats.embeddings import EmbeddingWriter  # noqa: E402
from structure_tokens.formats.shards import Protein, shard_name, write_shard  # noqa: E402
from structure_tokens.formats.tokens import TokenWriter  # noqa: E402
from structure_tokens.formats.vocab import write_vocab  # noqa: E402
from structure_tokens.inputs.readers import read_fasta  # noqa: E402
from structure_tokens.llm.finetune import write_finetune_part  # noqa: E402
from structure_tokens.llm.outputs import write_shard_outputs  # noqa: E402
from structure_tokens.workflow_logging import PEAK_RSS_MESSAGE  # noqa: E402

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
    """Per rule: jobs, total wall and CPU seconds (``benchmark:`` files), and the largest peak RSS of its jobs.

    The peak RSS is the kernel's high-water mark that every job logs when it exits (exact, where
    the ``benchmark:`` files only sample memory about once a second); the sampled value is kept too.
    Per-shard rules also list each job's peak under ``job_peak_rss_mib`` (by shard).
    """
    peaks: dict[str, dict] = defaultdict(
        lambda: {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mib": 0.0, "sampled_max_rss_mb": 0.0})
    for tsv in (results / "job_benchmarks").rglob("*.tsv"):
        rule = tsv.parent.name if tsv.parent.name != "job_benchmarks" else tsv.stem
        row = pd.read_csv(tsv, sep="\t").iloc[0]
        peak = peaks[rule]
        peak["jobs"] += 1
        peak["seconds"] += float(row["s"])
        peak["cpu_seconds"] += float(row["cpu_time"])
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


def real_lengths() -> np.ndarray:
    """Protein lengths of the real sample, to draw synthetic lengths from."""
    return np.array([len(r.sequence or "") for r in read_fasta(REAL_FASTA)])


def synthetic_plan(n: int, root: Path) -> dict:
    """1M synthetic proteins: prepare only, then the dry-run of the whole DAG."""
    workdir = root / "synthetic"
    workdir.mkdir()
    fasta = workdir / "input.fasta"
    lengths = real_lengths()
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


TAIL_RULES = ("llm_outputs", "vocab", "finetune_shard", "codebook_summary", "finetune_data", "report")
AFTER_LAST_SHARD = ("codebook_summary", "finetune_data", "report")  # the rules that wait for every shard
FUNCTION_WORDS = np.array("catalyzes the hydrolysis of binds transports regulates transcription in response to "
                          "stress required for assembly of the complex membrane protein kinase activity".split())


def synthetic_proteins(first: int, count: int, lengths: np.ndarray, rng: np.random.Generator) -> list[Protein]:
    """``count`` proteins with ids from ``first``, lengths drawn from ``lengths``, a ~300-character function text."""
    sizes = rng.choice(lengths, count)
    residues = AMINO[rng.integers(0, 20, sizes.sum())].astype("S1").tobytes().decode()
    ends = np.cumsum(sizes)
    proteins = []
    for i, (size, end) in enumerate(zip(sizes, ends)):
        sequence = residues[end - size:end]
        words = " ".join(FUNCTION_WORDS[rng.integers(0, len(FUNCTION_WORDS), 40)])
        proteins.append(Protein(f"syn{first + i:07d}", sequence, hashlib.sha256(sequence.encode()).hexdigest(),
                                description=f"Synthetic protein {first + i}", function=f"{words}."))
    return proteins


def write_gpu_outputs(results: Path, n: int, shard_size: int, k: int, train_shards: list[int], dim: int) -> dict:
    """What `prepare` and the GPU jobs of a one-pass run leave on disk, in the order they would write it."""
    rng = np.random.default_rng(0)
    lengths = real_lengths()
    names = [shard_name(i) for i in range(-(-n // shard_size))]
    start = time.perf_counter()
    shards = {}
    for number, name in enumerate(names):
        shards[name] = synthetic_proteins(number * shard_size, min(shard_size, n - number * shard_size), lengths, rng)
        write_shard(results / f"prepared/shards/{name}.tsv", shards[name])
    n_residues = sum(p.length for proteins in shards.values() for p in proteins)
    (results / "prepared/manifest.tsv").write_text("input_id\tstatus\treason\tprotein_id\tshard\tlength\n")
    (results / "prepared/prepare_summary.json").write_text(json.dumps({
        "n_records": n, "n_proteins": n, "n_residues": n_residues, "n_shards": len(names), "shards": names,
        "status_counts": {"kept": n}, "reason_counts": {}}))
    attrs = {"model_name": "synthetic_benchmark", "layer": 33}
    for number in train_shards:  # one-pass mode: only the training shards are embedded to disk
        name = names[number]
        writer = EmbeddingWriter(results / f"embeddings/{name}.h5", embed_dim=dim, attrs=attrs,
                                 proteins=[(p.id, p.sequence_hash, "") for p in shards[name]])
        for protein in shards[name]:
            writer.add(protein.id, rng.normal(size=(protein.length, dim)).astype(np.float16))
        writer.finalise()
        write_throughput(results / f"job_benchmarks/embed/{name}.json", name, shards[name])
    codebook = Codebook(rng.normal(size=(k, dim)).astype(np.float32), model_name=attrs["model_name"],
                        layer=attrs["layer"], seed=0, n_train=1)
    codebook.save(results / f"codebook/codebook_K{k}.npz")
    (results / f"codebook/training_K{k}.json").write_text(json.dumps({"inertia": 1.0, "train_mse": 1.0,
                                                                      "heldout_mse": None, "n_train": 1}))
    for name in names:
        writer = TokenWriter(results / f"tokens/{name}.h5", [(p.id, p.sequence_hash, "") for p in shards[name]],
                             codebook, {"model_name": attrs["model_name"]}, flush_rows=1 << 20)
        for protein in shards[name]:
            writer.add(protein.id, rng.integers(0, k, protein.length).astype(np.uint16))
        writer.finalise()
        write_throughput(results / f"job_benchmarks/embed_tokenize/{name}.json", name, shards[name])
    return {"n_shards": len(names), "n_residues": n_residues, "write_s": round(time.perf_counter() - start, 1)}


def write_throughput(path: Path, shard: str, proteins: list[Protein]) -> None:
    """The throughput file of a GPU job (made-up speed: 150k residues/s)."""
    residues = sum(p.length for p in proteins)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"shard": shard, "residues": residues, "seconds": residues / 150_000,
                                "residues_per_s": 150_000, "padding_fraction": 0.02, "device": "cuda",
                                "dtype": "float16", "progress": []}))


def png_size(path: Path) -> list[int]:
    """Width and height of a PNG in pixels."""
    header = path.read_bytes()[16:24]
    return [int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")]


def shard_outputs_in_process(results: Path, shards: list[str], k: int) -> None:
    """What the per-shard jobs (`llm_outputs`, `vocab`, `finetune_shard`) write, made by the same package
    functions in this process (no Snakemake job per shard)."""
    codebook = results / f"codebook/codebook_K{k}.npz"
    for shard in shards:
        write_shard_outputs(results / f"prepared/shards/{shard}.tsv", results / f"tokens/{shard}.h5", codebook,
                            out_parquet=results / f"tokens.parquet/{shard}.parquet",
                            out_jsonl=results / f"interleaved.jsonl/{shard}.jsonl",
                            out_counts=results / f"token_counts/{shard}.json")
    write_vocab(results / "vocab.json", k, 0, Codebook.load(codebook).sha256)
    for shard in shards:
        write_finetune_part(results / f"tokens.parquet/{shard}.parquet", results / "vocab.json", codebook,
                            results / f"sft_parts/{shard}")


def tail_run(n: int, root: Path, shard_size: int, k: int = 512, n_train_shards: int = 4, dim: int = 8, *,
             shard_jobs: bool = True) -> dict:
    """Every rule after the tokens on ``n`` synthetic proteins, each rule alone (temp files kept).

    Without ``shard_jobs``, the per-shard outputs are made in this process and only the rules that
    wait for the last shard run (to time them at many shards without thousands of jobs here).
    """
    workdir = root / f"tail_{n}_{shard_size}"
    results = workdir / "results"
    fasta, checkpoint = workdir / "input.fasta", workdir / "model.pt"
    workdir.mkdir()
    fasta.write_text(">unused\nMKV\n")  # the run's input, older than everything `prepare` made
    checkpoint.write_bytes(b"stands for the model weights: no job here reads them")
    n_shards = -(-n // shard_size)
    count = min(n_train_shards, n_shards)
    train_shards = [i * n_shards // count for i in range(count)]  # as the workflow spreads them
    made = write_gpu_outputs(results, n, shard_size, k, train_shards, dim)
    config = write_config(workdir, fasta, checkpoint, keep_embeddings=False, input={"shard_size": shard_size},
                          codebook={"k": k, "train_shards": len(train_shards), "holdout_fraction": 0.0})
    _, plan = snakemake(workdir, config, "-n", "--quiet", "rules")
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, re.MULTILINE))
    shards = json.loads((results / "prepared/prepare_summary.json").read_text())["shards"]
    targets = {"llm_outputs": [f"results/token_counts/{shard}.json" for shard in shards],
               "vocab": ["results/vocab.json"],
               "finetune_shard": [f"results/sft_parts/{shard}" for shard in shards],
               "codebook_summary": [f"results/codebook_summary_K{k}.json"],
               "finetune_data": ["results/sft"],
               "report": ["results/report/summary.md"]}
    if not shard_jobs:
        start = time.perf_counter()
        shard_outputs_in_process(results, shards, k)
        made["shard_outputs_in_process_s"] = round(time.perf_counter() - start, 1)
    commands = {}
    run_rules = TAIL_RULES if shard_jobs else AFTER_LAST_SHARD
    for rule in run_rules:  # each rule alone: its outputs as targets, everything upstream already there
        commands[rule], _ = snakemake(workdir, config, "--cores", "2", "--notemp", *targets[rule])
    _, rest = snakemake(workdir, config, "-n")
    rules = rule_peaks(results)
    per_shard = {rule: {column: max(pd.read_csv(tsv, sep="\t").iloc[0][column]
                                    for tsv in (results / "job_benchmarks" / rule).glob("*.tsv"))
                        for column in ("s", "cpu_time")}
                 for rule in ("llm_outputs", "finetune_shard") if shard_jobs}
    return {"n_proteins": n, "shard_size": shard_size, "k": k, **made,
            "planned_jobs": {rule: int(count) for rule, count in planned.items()},
            "nothing_left": "Nothing to be done" in rest,
            "snakemake_s": {rule: round(seconds, 1) for rule, seconds in commands.items()},
            "rules": {rule: rules[rule] for rule in run_rules},
            "after_last_shard_s": round(sum(rules[rule]["seconds"] for rule in AFTER_LAST_SHARD), 2),
            "after_last_shard_cpu_s": round(sum(rules[rule]["cpu_seconds"] for rule in AFTER_LAST_SHARD), 2),
            "after_last_shard_snakemake_s": round(sum(commands[rule] for rule in AFTER_LAST_SHARD), 1),
            "slowest_shard_job_s": per_shard,
            "disk_mb": {name: size_mb(results / name) for name in
                        ("prepared/shards", "tokens", "tokens.parquet", "interleaved.jsonl", "token_counts", "sft",
                         "report")},
            "throughput_png_px": png_size(results / "report/throughput.png")}


def main() -> None:
    global REAL_FASTA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    parser.add_argument("--modes", nargs="*", choices=list(MODES), default=list(MODES),
                        help="keep: embeddings kept (two passes); one-pass: keep_embeddings false")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--tail", nargs="*", type=int, default=[],
                        help="proteins for part 3, the rules after the tokens (e.g. 100000 1000000)")
    parser.add_argument("--tail-shard-size", type=int, default=10000)
    parser.add_argument("--tail-many-shards", nargs="*", type=int, default=[],
                        help="shard counts at which to time only the rules that wait for the last shard "
                             "(10 proteins a shard, per-shard outputs made in-process), e.g. 1000 10000")
    parser.add_argument("--real-fasta", type=Path, default=REAL_FASTA,
                        help="the real proteins (first records, and the length distribution)")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    REAL_FASTA = args.real_fasta
    results: dict = {"real": [], "synthetic": None, "tail": []}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        checkpoint = write_random_esm2_checkpoint(root / "esm2_t2_32_tiny_random.pt")
        for n in args.tail:
            results["tail"].append(tail_run(n, root, args.tail_shard_size))
            print(json.dumps(results["tail"][-1]), flush=True)
            shutil.rmtree(root / f"tail_{n}_{args.tail_shard_size}")
        for n_shards in args.tail_many_shards:
            results["tail"].append(tail_run(10 * n_shards, root, 10, shard_jobs=False))
            print(json.dumps(results["tail"][-1]), flush=True)
            shutil.rmtree(root / f"tail_{10 * n_shards}_10")
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
