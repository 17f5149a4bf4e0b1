"""Paths, shard discovery, damaged-file detection and config helpers shared by every rule."""

import json

from structure_tokens.envs import env_file
from structure_tokens.formats.integrity import damaged_shard_files
from structure_tokens.slurm import gpu_job_resources

OUT = config["output_dir"]
K = config["codebook"]["k"]
KEEP_EMBEDDINGS = config["keep_embeddings"]
SHARD = "shard_{shard}"
try:
    GPU_JOB = gpu_job_resources()  # one GPU on the GPU partition: `resources: **GPU_JOB` of every GPU rule
except ValueError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    shard=r"\d{5}",


def conda_env(name):
    """The file of GPU env `name` in the `cuda_variant` chosen: envs/<name>.yaml (cu13) or envs/cu12/<name>.yaml."""
    return env_file(WORKFLOW_DIR, name, config["cuda_variant"])


def model_checkpoint():
    """Local checkpoint of the ESM-2 model: `model.checkpoint`, else the cached hub download."""
    if config["model"]["checkpoint"]:
        return config["model"]["checkpoint"]
    name = config["model"]["name"]
    return os.path.join(config["model"]["cache_dir"], "checkpoints", f"{name}.pt")


def weights_to_download():
    """True when the workflow must download the hub weights: no `model.checkpoint`, nothing cached yet.

    The file appears only once complete (written atomically, after its contact-regression file).
    """
    return not config["model"]["checkpoint"] and not os.path.exists(model_checkpoint())


def input_file():
    """The user's input file, so that editing it re-runs `prepare` (none for the demo/HF hub)."""
    return [config["input"]["path"]] if config["input"]["path"] else []


def shard_ids(wildcards=None):
    """Shard numbers written by the `prepare` checkpoint (known once it has run)."""
    with open(checkpoints.prepare.get().output.summary) as handle:
        return [name.removeprefix("shard_") for name in json.load(handle)["shards"]]


def evenly_spread(shards, n):
    """At most `n` of `shards`, spread evenly over them (all of them when `n` is None)."""
    if n is None or n >= len(shards):
        return shards
    return [shards[i * len(shards) // n] for i in range(n)]


def train_shard_ids():
    """Shards whose embeddings train the codebook: all, or `codebook.train_shards` spread evenly."""
    return evenly_spread(shard_ids(), config["codebook"]["train_shards"])


def embedded_shard_ids():
    """Shards written to `embeddings/`: all of them, or only the training shards when not kept."""
    return shard_ids() if KEEP_EMBEDDINGS else train_shard_ids()


PCA_SHARDS = 20  # the report's PCA draws its residues from at most this many embedded shards


def pca_shard_ids():
    """Embedded shards the report's PCA samples: at most `PCA_SHARDS`, spread evenly."""
    return evenly_spread(embedded_shard_ids(), PCA_SHARDS)


def per_shard(pattern, shards=shard_ids):
    """Input function: `pattern` expanded over `shards()` (default: every shard)."""
    return lambda wildcards: expand(pattern, shard=shards())


def mark_damaged_files_outdated():
    """Make Snakemake rebuild every damaged shard file and everything made from it.

    `damaged_shard_files` verifies every checksum of each shard file not known intact in its
    present state (see `structure_tokens.formats.integrity`). Nothing is deleted: each damaged file
    keeps its bytes (for inspection) but gets the modification time 0 (1970), so Snakemake's
    `mtime` rerun trigger (on by default) sees it as older than its inputs; the job that made it
    runs again, replacing it atomically, and every job downstream follows. Runs in the main
    Snakemake process only, not in the jobs it submits.
    """
    for damaged in damaged_shard_files(OUT):
        logger.warning(f"{damaged}: it and everything made from it will be rebuilt")
        os.utime(damaged.path, ns=(0, 0))


if workflow.is_main_process and OUTPUT_FOLDER_LOCK is not False:  # not while another run holds the folder
    mark_damaged_files_outdated()


def throughput_files(wildcards=None):
    """The per-shard throughput JSON files of every embedding job of the run."""
    files = expand(f"{OUT}/job_benchmarks/embed/{SHARD}.json", shard=embedded_shard_ids())
    if not KEEP_EMBEDDINGS:
        files += expand(f"{OUT}/job_benchmarks/embed_tokenize/{SHARD}.json", shard=shard_ids())
    return files


def embeddings_output(path):
    """Embeddings are a kept output, or `temp()` when `keep_embeddings: false`."""
    return path if KEEP_EMBEDDINGS else temp(path)


def evaluation_outputs():
    """Held-out codebook metrics (when proteins are held out) and, with `evaluation.structures`,
    the agreement of tokens with real structures."""
    outputs = []
    if config["codebook"]["holdout_fraction"] > 0:
        outputs += [f"{OUT}/evaluation/heldout_metrics_K{K}.{ext}" for ext in ("json", "tsv", "html")]
    if config["evaluation"]["structures"]:
        outputs += [f"{OUT}/evaluation/structures/agreement_K{K}.{ext}" for ext in ("tsv", "json", "html")]
        outputs.append(f"{OUT}/evaluation/structures/token_tracks_K{K}.png")
    return outputs


def shard_outputs(wildcards=None):
    """Every shard's part of the token table and of the interleaved stream (known once `prepare` has run)."""
    return expand(
        [f"{OUT}/tokens.parquet/{SHARD}.parquet", f"{OUT}/interleaved.jsonl/{SHARD}.jsonl"], shard=shard_ids()
    )


def final_outputs():
    """Everything `rule all` builds but the shards' parts (`shard_outputs`); the model weights are
    listed so a missing download stops the run first."""
    return [
        model_checkpoint(),
        f"{OUT}/vocab.json",
        f"{OUT}/codebook_summary_K{K}.json",
        f"{OUT}/report/clustering_pca.png",
        f"{OUT}/report/token_usage.png",
        f"{OUT}/report/summary.md",
        f"{OUT}/sft",
        *evaluation_outputs(),
    ]
