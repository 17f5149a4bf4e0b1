"""Fixed cost of one `embed` job before any residue is embedded, and what it means at 1M proteins.

Measures, on this machine, in one run, each step in a fresh interpreter as a job runs it:
- the Python imports of the `embed` entry point;
- the model load, from the checkpoint file to float16 weights ready for inference, the way
  fair-esm does it (`torch.load` into memory, a randomly initialised ESM2, then the weights copied
  over it), with `load_esm2`'s model build on weights read into memory, and with
  `structure_tokens.embed.checkpoint.load_esm2` itself (memory-mapped tensors, a model built
  without random initialisation that takes them without a copy); all cast with `cast_model`;
and models the GPU busy fraction of a run of 1M proteins for each of `--shard-sizes` (one GPU job
per shard) from those fixed costs and an assumed GPU rate (not measured here: no GPU).

    python benchmarks/job_overhead.py --layers 33 --dim 1280 --heads 20   # 650M-shaped random weights
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from timing import median_seconds  # noqa: E402

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint  # noqa: E402

IMPORTS = ("import structure_tokens.embed.embedder, structure_tokens.embed.options, "
           "structure_tokens.formats.atomic, structure_tokens.threads, structure_tokens.workflow_logging")
LOAD = """
import argparse, json, pathlib, sys, time
import esm, torch
from structure_tokens.embed.attention import cast_model
from structure_tokens.embed.checkpoint import build_esm2, load_esm2, regression_path
torch.set_num_threads(2)
path, loader = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if loader == "load_esm2":
    model, _, *_ = load_esm2(path)
else:  # the weights read into memory, without mmap
    with torch.serialization.safe_globals([argparse.Namespace]):
        data, regression = (torch.load(p, map_location="cpu", weights_only=True) for p in (path, regression_path(path)))
    if loader == "fair-esm":
        model, _ = esm.pretrained.load_model_and_alphabet_core(pathlib.Path(path).stem, data, regression)
    else:
        model, _ = build_esm2(data, regression)
cast_model(model.eval(), torch.device("cpu"), torch.float16)
print(json.dumps(time.perf_counter() - start))
"""


def load_seconds(checkpoint: Path, loader: str, repeats: int) -> float:
    """Median time of one model load, timed inside a fresh interpreter (after its imports)."""
    return statistics.median(
        json.loads(subprocess.run([sys.executable, "-c", LOAD, str(checkpoint), loader], check=True, cwd=REPO,
                                  capture_output=True, text=True).stdout)
        for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=33)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--heads", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--proteins", type=int, default=1_000_000)
    parser.add_argument("--shard-sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--residues-per-protein", type=float, default=450, help="mean length")
    parser.add_argument("--gpu-residues-per-s", type=float, default=250_000,
                        help="ASSUMED GPU rate for the model (the issue's FLOP-model estimate for 650M on an H100)")
    args = parser.parse_args()

    imports, _ = median_seconds(  # a fresh interpreter each time
        lambda: subprocess.run([sys.executable, "-c", IMPORTS], check=True, cwd=REPO, capture_output=True),
        args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        path = write_random_esm2_checkpoint(Path(folder) / f"esm2_t{args.layers}_{args.dim}_random.pt",
                                            num_layers=args.layers, embed_dim=args.dim, attention_heads=args.heads)
        loads = {loader: load_seconds(path, loader, args.repeats)
                 for loader in ("fair-esm", "load_esm2 without mmap", "load_esm2")}

    print(f"machine: torch {torch.__version__}, 2 threads; model {args.layers} layers x {args.dim}; "
          f"median of {args.repeats} fresh interpreters")
    print(f"imports of the embed entry point: {imports:.2f} s")
    for loader, seconds in loads.items():
        print(f"model load to float16, {loader}: {seconds:.2f} s")
    print(f"\nmodelled run: {args.proteins} proteins of {args.residues_per_protein:g} residues, GPU "
          f"{args.gpu_residues_per_s:.0f} res/s (assumed)\n")
    print("| input.shard_size | GPU jobs | GPU compute per job | fixed cost | GPU busy | idle GPU-hours |")
    print("|---|---|---|---|---|---|")
    for shard_size in args.shard_sizes:
        shards = -(-args.proteins // shard_size)
        compute = shard_size * args.residues_per_protein / args.gpu_residues_per_s
        for loader, seconds in loads.items():
            fixed = imports + seconds
            print(f"| {shard_size} | {shards} | {compute:.1f} s | {fixed:.2f} s ({loader}) | "
                  f"{compute / (compute + fixed):.0%} | {shards * fixed / 3600:.2f} |")


if __name__ == "__main__":
    main()
