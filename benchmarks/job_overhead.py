"""Fixed cost of one `embed` job before any residue is embedded, and what it means at 1M proteins.

Measures, on this machine, in one run:
- the Python imports of the `embed` entry point (a fresh interpreter each time);
- loading a checkpoint the way fair-esm does it (a randomly initialised ESM2, then the weights
  copied over it) against `structure_tokens.embed.checkpoint.load_esm2` (built on the meta
  device, weights loaded into uninitialised memory), both after the same `torch.load`;
and models the GPU busy fraction of a run of 1M proteins for each of `--shard-sizes` (one GPU job
per shard) from those fixed costs and an assumed GPU rate (not measured here: no GPU).

    python benchmarks/job_overhead.py --layers 33 --dim 1280 --heads 20   # 650M-shaped random weights
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import esm
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from structure_tokens.embed.checkpoint import (  # noqa: E402
    build_esm2,
    regression_path,
    safe_load,
    write_random_esm2_checkpoint,
)

IMPORTS = ("import structure_tokens.embed.embedder, structure_tokens.embed.options, "
           "structure_tokens.formats.atomic, structure_tokens.threads, structure_tokens.workflow_logging")


def seconds(action, repeats: int) -> float:
    """Median wall time of ``action()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    torch.set_num_threads(2)

    imports = seconds(lambda: subprocess.run([sys.executable, "-c", IMPORTS], check=True, cwd=REPO), args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        name = f"esm2_t{args.layers}_{args.dim}_random"
        path = write_random_esm2_checkpoint(Path(folder) / f"{name}.pt", num_layers=args.layers,
                                            embed_dim=args.dim, attention_heads=args.heads)
        torch_load = seconds(lambda: (safe_load(path), safe_load(regression_path(path))), args.repeats)

        def build_seconds(build) -> float:
            """Median time of ``build(model_data, regression_data)``, each run on freshly loaded data."""
            times = []
            for _ in range(args.repeats):
                data, regression = safe_load(path), safe_load(regression_path(path))
                start = time.perf_counter()
                build(data, regression)
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        before = build_seconds(lambda data, regression: esm.pretrained.load_model_and_alphabet_core(
            name, data, regression))
        after = build_seconds(build_esm2)

    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"model {args.layers} layers x {args.dim}; median of {args.repeats}")
    print(f"imports of the embed entry point: {imports:.2f} s")
    print(f"torch.load of checkpoint + regression: {torch_load:.2f} s")
    print(f"model build + weights, fair-esm (random init first): {before:.2f} s")
    print(f"model build + weights, load_esm2 (meta device): {after:.2f} s  ({before / after:.1f}x faster)")
    print(f"\nmodelled run: {args.proteins} proteins of {args.residues_per_protein:g} residues, GPU "
          f"{args.gpu_residues_per_s:.0f} res/s (assumed)\n")
    print("| input.shard_size | GPU jobs | GPU compute per job | fixed cost | GPU busy | idle GPU-hours |")
    print("|---|---|---|---|---|---|")
    for shard_size in args.shard_sizes:
        shards = -(-args.proteins // shard_size)
        compute = shard_size * args.residues_per_protein / args.gpu_residues_per_s
        for label, build in (("fair-esm load", before), ("load_esm2", after)):
            fixed = imports + torch_load + build
            print(f"| {shard_size} | {shards} | {compute:.1f} s | {fixed:.2f} s ({label}) | "
                  f"{compute / (compute + fixed):.0%} | {shards * fixed / 3600:.2f} |")

if __name__ == "__main__":
    main()
