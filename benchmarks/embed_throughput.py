"""Embedding throughput: the user's seed loop vs fair-esm's extract.py loop vs this project, one run.

Same real proteins (by default the 2,000 UniProt records shipped in `tests/data/real`, long ones
included), same randomly initialised weights in the released ESM-2 shapes, same device. Methods:

- (a) the seed loop: one protein at a time, float32, every layer's hidden states to the host
  (on a seeded subset of ``--original-n`` proteins: it is by far the slowest);
- (b) extract.py-style batching: length-sorted 4096-token batches, last layer, in float32 and float16;
- (c) this project's `Embedder` as the `embed` rule runs it.

Proteins over 1022 residues are truncated by (a) and (b), as extract.py does, and windowed by
(c); every rate counts the residues the method embedded. Each method gets an untimed full
warm-up pass, then ``--repeats`` timed passes, the methods alternating within each repeat. Per
model it prints residues/s (median), the ratios c/a and c/b, the fraction of the device's dense
half-precision peak, peak GPU memory above the weights held, padding, the SDPA kernel the fused
attention ran, the model load time, and the end-to-end time of one shard job in both modes (`embed` writing
embeddings, `embed_tokenize` writing tokens with a K=512 codebook), model load included.

  python benchmarks/embed_throughput.py --device cuda --json gpu.json   # 8M..650M, 2,000 proteins
  python benchmarks/embed_throughput.py --device cpu --arch t6_8M --n 200 --original-n 50
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import esm
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from structure_tokens.embed.checkpoint import load_esm2, write_random_esm2_checkpoint  # noqa: E402
from structure_tokens.embed.embedder import Embedder, embed_shard  # noqa: E402
from structure_tokens.embed.options import WINDOW, EmbedOptions  # noqa: E402
from structure_tokens.formats.codebook import Codebook  # noqa: E402
from structure_tokens.formats.shards import Protein, write_shard  # noqa: E402
from structure_tokens.inputs.readers import read_fasta  # noqa: E402
from structure_tokens.inputs.validate import sequence_hash  # noqa: E402
from structure_tokens.tokenize.one_pass import embed_and_tokenize_shard  # noqa: E402

ARCHITECTURES = {  # name: (layers, embed_dim, heads), as in the released ESM-2 models
    "t6_8M": (6, 320, 20),
    "t12_35M": (12, 480, 20),
    "t30_150M": (30, 640, 20),
    "t33_650M": (33, 1280, 20),
}
DEFAULT_FASTA = REPO / "tests/data/real/sequences/mmseqs2_examples_DB_first2000.fasta.gz"
STANDARD = set("ACDEFGHIKLMNPQRSTVWY")
PEAK_TFLOPS = {"H100 SXM": 989, "H100 80GB HBM3": 989, "H100 PCIe": 756, "H100 NVL": 835, "H200": 989,
               "GH200": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "V100": 125}  # dense fp16/bf16
CODEBOOK_K = 512
SDPA_NAMES = ("scaled_dot_product", "flash", "fmha", "sdpa", "efficient_attention")  # ops and kernels


def read_sequences(fasta: Path, n: int, seed: int) -> list[str]:
    """``n`` standard-alphabet sequences of ``fasta`` (all when it has fewer), in a seeded order."""
    usable = [r.sequence for r in read_fasta(fasta) if r.sequence and set(r.sequence) <= STANDARD]
    return random.Random(seed).sample(usable, min(n, len(usable)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seed_loop(model, alphabet, sequences, device) -> dict:
    """(a) The user's note: one protein at a time, float32, every layer's hidden states kept."""
    converter = alphabet.get_batch_converter(WINDOW)
    layers = list(range(model.num_layers + 1))
    with torch.no_grad():
        for i, sequence in enumerate(sequences):
            _, _, tokens = converter([(str(i), sequence)])
            out = model(tokens.to(device), repr_layers=layers)
            _ = [out["representations"][layer][0, 1:min(len(sequence), WINDOW) + 1].cpu() for layer in layers]
    return {"residues": sum(min(len(s), WINDOW) for s in sequences)}


def extract_loop(model, alphabet, sequences, device) -> dict:
    """(b) fair-esm's extract.py: length-sorted batches of 4096 tokens, last layer, truncated at 1022."""
    dataset = esm.FastaBatchedDataset([str(i) for i in range(len(sequences))], sequences)
    batches = dataset.get_batch_indices(4096, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(dataset, collate_fn=alphabet.get_batch_converter(WINDOW),
                                         batch_sampler=batches)
    tokens_run = 0
    with torch.no_grad():
        for _, strs, tokens in loader:
            tokens_run += tokens.numel()
            out = model(tokens.to(device), repr_layers=[model.num_layers])
            rep = out["representations"][model.num_layers]
            _ = [rep[i, 1:min(len(s), WINDOW) + 1].clone().cpu() for i, s in enumerate(strs)]
    residues = sum(min(len(s), WINDOW) for s in sequences)
    return {"residues": residues, "padding": 1 - (residues + 2 * len(sequences)) / tokens_run}


def proteins_of(sequences: list[str]) -> list[Protein]:
    return [Protein(f"p{i}", s, sequence_hash(s)) for i, s in enumerate(sequences)]


def project_loop(embedder: Embedder, sequences) -> dict:
    """(c) This project's Embedder, as the embed rule runs it."""
    embedder.tokens_run = embedder.real_tokens_run = 0
    for _ in embedder.embed(proteins_of(sequences)):
        pass
    return {"residues": sum(map(len, sequences)), "padding": 1 - embedder.real_tokens_run / embedder.tokens_run}


def sdpa_kernels(embedder: Embedder, sequences: list[str]) -> dict[str, list[str]]:
    """The SDPA operators (and their CUDA kernels) that one padded and one unpadded batch dispatched to."""
    batches = {"padded": sorted(sequences, key=len)[len(sequences) // 2:][:8],
               "unpadded": [min(sequences, key=len)]}
    found = {}
    for name, batch in batches.items():
        activities = [torch.profiler.ProfilerActivity.CPU]
        if embedder.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profile:
            project_loop(embedder, batch)
            synchronize(embedder.device)
        names = {event.key for event in profile.key_averages()}
        found[name] = sorted(n for n in names if any(key in n.lower() for key in SDPA_NAMES))
    return found


def flops_per_residue(layers: int, dim: int, length: float) -> float:
    """Dense FLOPs per residue: 2 x the layers' weights (12 dim^2 each) + QK^T and AV (4 L dim each),
    for pieces of ``length`` residues (over a sample: the residue-weighted mean, sum L^2 / sum L)."""
    return 2 * layers * 12 * dim * dim + layers * 4 * length * dim


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def shard_jobs(checkpoint: Path, sequences: list[str], options: EmbedOptions, workdir: Path, dim: int,
               layers: int) -> dict[str, float]:
    """Seconds of one `embed` job and one `embed_tokenize` job on the proteins, model load included."""
    shard = workdir / "shard.tsv"
    write_shard(shard, proteins_of(sequences))
    rng = np.random.default_rng(0)
    codebook = workdir / "codebook.npz"
    Codebook(rng.standard_normal((CODEBOOK_K, dim)).astype(np.float32), checkpoint.stem, layers, 0, 0).save(codebook)
    seconds = {}
    for mode, job in (("embed", lambda out: embed_shard(shard, checkpoint, out, options)),
                      ("embed_tokenize", lambda out: embed_and_tokenize_shard(shard, checkpoint, codebook, out,
                                                                              options))):
        out = workdir / f"{mode}.h5"
        start = time.perf_counter()
        job(out)
        seconds[mode] = time.perf_counter() - start
        out.unlink()
    return seconds


def run(arch: str, sequences: list[str], original_n: int, device: torch.device, repeats: int, workdir: Path,
        compile_variant: bool, log: Callable[[str], None]) -> dict:
    layers, dim, heads = ARCHITECTURES[arch]
    checkpoint = write_random_esm2_checkpoint(workdir / f"esm2_{arch}_random.pt", num_layers=layers,
                                              embed_dim=dim, attention_heads=heads, seed=0)
    options = EmbedOptions(device=device.type)
    seed_subset = sequences[:original_n]

    def plain(dtype: torch.dtype):
        model, alphabet, *_ = load_esm2(checkpoint)
        return model.to(device=device, dtype=dtype).eval(), alphabet

    synchronize(device)
    start = time.perf_counter()
    model, alphabet, *_ = load_esm2(checkpoint)
    embedder = Embedder(model, alphabet, options)
    synchronize(device)
    load_seconds = time.perf_counter() - start
    half = torch.float16 if device.type == "cuda" else torch.float32  # CPUs have no fast float16 matmul
    methods = {"a_seed_loop": (seed_loop, plain(torch.float32), seed_subset),
               "b_extract_fp32": (extract_loop, plain(torch.float32), sequences)}
    if half != torch.float32:
        methods["b_extract_fp16"] = (extract_loop, plain(half), sequences)
    methods["c_project"] = (lambda m, a, s, d: project_loop(m, s), (embedder, None), sequences)
    if compile_variant:
        compiled = Embedder(*load_esm2(checkpoint)[:2], options)
        compiled.model = torch.compile(compiled.model, dynamic=True)
        methods["c_project_compiled"] = (lambda m, a, s, d: project_loop(m, s), (compiled, None), sequences)

    stats: dict[str, dict] = {}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(repeats + 1):  # pass 0 is the warm-up
        for name, (method, (model_or_embedder, alphabet), seqs) in methods.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                resident = torch.cuda.memory_allocated(device)  # every method's weights
            synchronize(device)
            start = time.perf_counter()
            stats[name] = method(model_or_embedder, alphabet, seqs, device)
            synchronize(device)
            elapsed = time.perf_counter() - start
            if repeat:
                times[name].append(elapsed)
            if device.type == "cuda":
                stats[name]["peak_gib"] = (torch.cuda.max_memory_allocated(device) - resident) / 2**30
            log(f"{arch} {name} {'warm-up' if not repeat else f'repeat {repeat}'}: {elapsed:.2f} s")
    result = {"arch": arch, "n_proteins": len(sequences), "n_residues": sum(map(len, sequences)),
              "original_n": len(seed_subset), "load_seconds": load_seconds, "methods": {}}
    for name, seconds in times.items():
        residues = stats[name]["residues"]
        result["methods"][name] = {**stats[name], "seconds": seconds,
                                   "residues_per_s": residues / statistics.median(seconds)}
    rate = {name: m["residues_per_s"] for name, m in result["methods"].items()}
    result["c_over_a"] = rate["c_project"] / rate["a_seed_loop"]
    result["c_over_b"] = rate["c_project"] / max(v for k, v in rate.items() if k.startswith("b_"))
    lengths = np.minimum([len(s) for s in sequences], WINDOW)  # attention cost per residue grows with its piece
    result["flops_per_residue"] = flops_per_residue(layers, dim, float((lengths ** 2).sum() / lengths.sum()))
    result["sdpa"] = sdpa_kernels(embedder, sequences)
    del methods, embedder
    result["shard_job_seconds"] = shard_jobs(checkpoint, sequences, options, workdir, dim, layers)
    return result


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def report(results: list[dict], device: torch.device, peak: float | None) -> str:
    """The results as Markdown."""
    first = results[0]
    lines = [f"# embed throughput on {machine(device)}; torch {torch.__version__}; {first['n_proteins']} proteins, "
             f"{first['n_residues']} residues ((a): {first['original_n']} proteins)", "",
             "| model | method | res/s (median) | padding | peak GiB above the weights | fraction of peak |",
             "|---|---|---|---|---|---|"]
    for r in results:
        for name, m in r["methods"].items():
            tflops = m["residues_per_s"] * r["flops_per_residue"] / 1e12
            fraction = f"{tflops / peak:.1%} ({tflops:.0f} TFLOP/s)" if peak else f"{tflops:.2f} TFLOP/s"
            padding = f"{m['padding']:.1%}" if "padding" in m else "0"
            memory = f"{m['peak_gib']:.2f}" if "peak_gib" in m else "-"
            lines.append(f"| {r['arch']} | {name} | {m['residues_per_s']:.0f} | {padding} | {memory} | {fraction} |")
    lines += ["", "| model | c/a | c/b (best b) | model load s | `embed` job s | `embed_tokenize` job s "
              "| SDPA (padded; unpadded) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        jobs = r["shard_job_seconds"]
        sdpa = "; ".join(", ".join(r["sdpa"][k]) or "none" for k in ("padded", "unpadded"))
        lines.append(f"| {r['arch']} | {r['c_over_a']:.1f}x | {r['c_over_b']:.2f}x | {r['load_seconds']:.2f} | "
                     f"{jobs['embed']:.2f} | {jobs['embed_tokenize']:.2f} | {sdpa} |")
    for r in results:
        if r["arch"] == "t33_650M" and device.type == "cuda":
            rate = r["methods"]["c_project"]["residues_per_s"]
            lines.append(f"\n650M targets: {rate:.0f} res/s (target >= 150000 on an H100), "
                         f"{r['c_over_a']:.1f}x the seed loop (target >= 20x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", nargs="+", choices=sorted(ARCHITECTURES),
                        help="default: all four on CUDA, t6_8M and t12_35M on CPU")
    parser.add_argument("--n", type=int, default=2000, help="proteins (default: all 2,000 of the FASTA)")
    parser.add_argument("--original-n", type=int, default=500, help="proteins of the seed loop (a)")
    parser.add_argument("--fasta", type=Path, default=DEFAULT_FASTA)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per method after the warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="also time the project's embedder under torch.compile")
    parser.add_argument("--peak-tflops", type=float, help="dense half-precision peak (default: known GPUs by name)")
    parser.add_argument("--json", type=Path, help="write the results here (after each model)")
    args = parser.parse_args()

    device = torch.device(args.device)
    arches = args.arch or (list(ARCHITECTURES) if device.type == "cuda" else ["t6_8M", "t12_35M"])
    sequences = read_sequences(args.fasta, args.n, args.seed)
    peak = peak_tflops(device, args.peak_tflops)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for arch in arches:
            results.append(run(arch, sequences, args.original_n, device, args.repeats, Path(workdir), args.compile,
                               log=lambda line: print(line, file=sys.stderr, flush=True)))
            if args.json:
                args.json.write_text(json.dumps({"machine": machine(device), "torch": torch.__version__,
                                                 "peak_tflops": peak, "results": results}, indent=1))
    print(report(results, device, peak))


if __name__ == "__main__":
    main()
