"""Embedding throughput: the user's original loop vs fair-esm's extract.py loop vs this project.

Same sequences (a seeded sample of real UniProt proteins, lengths up to 1022 so every method
sees whole proteins), same randomly initialised weights, same machine, one run. Reports
residues/s per method and the ratios c/a and c/b as a Markdown table (and JSON with --json).

  python benchmarks/embed_throughput.py --arch t6_8M t12_35M --n 200
  python benchmarks/embed_throughput.py --arch t33_650M --device cuda --n 2000   # on a GPU
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import esm
import torch

from structure_tokens.embed.checkpoint import load_esm2, write_random_esm2_checkpoint
from structure_tokens.embed.embedder import Embedder
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.shards import Protein
from structure_tokens.inputs.validate import sequence_hash

ARCHITECTURES = {  # name: (layers, embed_dim, heads), as in the released ESM-2 models
    "t6_8M": (6, 320, 20),
    "t12_35M": (12, 480, 20),
    "t30_150M": (30, 640, 20),
    "t33_650M": (33, 1280, 20),
}
DEFAULT_FASTA = Path(__file__).resolve().parents[1].parent / "shared/data/sequences/mmseqs2_examples_DB.fasta.gz"
MAX_RESIDUES = 1022
STANDARD = set("ACDEFGHIKLMNPQRSTVWY")


def sample_sequences(fasta: Path, n: int, seed: int) -> list[str]:
    """``n`` random standard-alphabet sequences of at most 1022 residues from ``fasta``."""
    sequences, current = [], []
    with gzip.open(fasta, "rt") if fasta.suffix == ".gz" else open(fasta) as handle:
        for line in handle:
            if line.startswith(">"):
                sequences.append("".join(current))
                current = []
            else:
                current.append(line.strip())
    sequences.append("".join(current))
    usable = [s for s in sequences if 0 < len(s) <= MAX_RESIDUES and set(s) <= STANDARD]
    return random.Random(seed).sample(usable, min(n, len(usable)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def original_loop(model, alphabet, sequences, device) -> None:
    """(a) The user's note: one protein at a time, float32, every layer's hidden states kept."""
    converter = alphabet.get_batch_converter()
    layers = list(range(model.num_layers + 1))
    with torch.no_grad():
        for i, sequence in enumerate(sequences):
            _, _, tokens = converter([(str(i), sequence)])
            out = model(tokens.to(device), repr_layers=layers)
            _ = [out["representations"][layer][0, 1:len(sequence) + 1].cpu() for layer in layers]


def extract_loop(model, alphabet, sequences, device) -> None:
    """(b) fair-esm's extract.py: length-sorted batches of 4096 tokens, float32, last layer."""
    dataset = esm.FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    batches = dataset.get_batch_indices(4096, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(MAX_RESIDUES), batch_sampler=batches)
    with torch.no_grad():
        for _, strs, tokens in loader:
            out = model(tokens.to(device), repr_layers=[model.num_layers])
            rep = out["representations"][model.num_layers]
            _ = [rep[i, 1:len(s) + 1].clone().cpu() for i, s in enumerate(strs)]


def project_embedder(model, alphabet, sequences, device, options: EmbedOptions) -> None:
    """(c) This project's Embedder, as the embed rule runs it."""
    proteins = [Protein(str(i), s, sequence_hash(s)) for i, s in enumerate(sequences)]
    for _ in Embedder(model, alphabet, options).embed(proteins):
        pass


def timed(fn, *args, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn(*args)
    synchronize(device)
    return time.perf_counter() - start


def flops_per_residue(layers: int, dim: int, mean_length: float) -> float:
    """~2 x parameters of the transformer layers + attention (QK^T and AV) per residue."""
    params = layers * 12 * dim * dim
    return 2 * params + layers * 4 * mean_length * dim


def run(arch: str, sequences: list[str], device: torch.device, repeats: int, workdir: Path) -> dict:
    layers, dim, heads = ARCHITECTURES[arch]
    checkpoint = write_random_esm2_checkpoint(workdir / f"esm2_{arch}_random.pt", num_layers=layers,
                                              embed_dim=dim, attention_heads=heads, seed=0)
    options = EmbedOptions(device=device.type)
    residues = sum(map(len, sequences))

    def fresh_model():  # each method gets its own copy: the project's embedder patches attention
        model, alphabet, _ = load_esm2(checkpoint)
        return model.to(device).eval(), alphabet

    methods = {
        "a_original": (original_loop, fresh_model()),
        "b_extract": (extract_loop, fresh_model()),
        "c_project": (lambda m, a, s, d: project_embedder(m, a, s, d, options), fresh_model()),
    }
    seconds = {}
    for name, (method, (model, alphabet)) in methods.items():
        method(model, alphabet, sequences[:8], device)  # warm-up: kernels, dtype casts, patching
        seconds[name] = min(timed(method, model, alphabet, sequences, device, device=device) for _ in range(repeats))
    rate = {name: residues / s for name, s in seconds.items()}
    result = {"arch": arch, "n_proteins": len(sequences), "n_residues": residues,
              "seconds": seconds, "residues_per_s": rate,
              "c_over_a": rate["c_project"] / rate["a_original"],
              "c_over_b": rate["c_project"] / rate["b_extract"],
              "flops_per_residue": flops_per_residue(layers, dim, residues / len(sequences))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["t6_8M", "t12_35M"], choices=sorted(ARCHITECTURES))
    parser.add_argument("--n", type=int, default=200, help="proteins sampled")
    parser.add_argument("--fasta", type=Path, default=DEFAULT_FASTA)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1, help="best of N timings per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float,
                        help="dense half-precision peak of the device (H100 SXM: 989) to report the fraction reached")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    sequences = sample_sequences(args.fasta, args.n, args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        results = [run(arch, sequences, device, args.repeats, Path(workdir)) for arch in args.arch]
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"# embed throughput on {machine}; torch {torch.__version__}; {results[0]['n_proteins']} proteins, "
          f"{results[0]['n_residues']} residues\n")
    print("| model | (a) original res/s | (b) extract.py res/s | (c) project res/s | c/a | c/b |")
    print("|---|---|---|---|---|---|")
    for r in results:
        rate = r["residues_per_s"]
        print(f"| {r['arch']} | {rate['a_original']:.0f} | {rate['b_extract']:.0f} | {rate['c_project']:.0f} "
              f"| {r['c_over_a']:.1f}x | {r['c_over_b']:.2f}x |")
        if args.peak_tflops:
            achieved = rate["c_project"] * r["flops_per_residue"] / 1e12
            print(f"\n{r['arch']}: (c) reaches {achieved:.1f} TFLOP/s = {achieved / args.peak_tflops:.1%} of "
                  f"{args.peak_tflops:g} TFLOP/s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
