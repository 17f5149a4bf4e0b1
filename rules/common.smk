"""Paths, shard discovery and config helpers shared by every rule."""

import json
import sys

from snakemake.logging import logger

sys.path.insert(0, workflow.basedir)  # the pipeline package of this checkout

from structure_tokens.embed.store import is_complete as embeddings_complete
from structure_tokens.tokenize.assign import is_complete as tokens_complete

OUT = config["output_dir"]
K = config["codebook"]["k"]
KEEP_EMBEDDINGS = config["keep_embeddings"]
SHARD = "shard_{shard}"


wildcard_constraints:
    shard=r"\d{5}",


def model_checkpoint():
    """Local checkpoint of the ESM-2 model: `model.checkpoint`, else the cached hub download."""
    if config["model"]["checkpoint"]:
        return config["model"]["checkpoint"]
    name = config["model"]["name"]
    return os.path.join(config["model"]["cache_dir"], "checkpoints", f"{name}.pt")


def input_file():
    """The user's input file, so that editing it re-runs `prepare` (none for the demo/HF hub)."""
    return [config["input"]["path"]] if config["input"]["path"] else []


def shard_ids(wildcards=None):
    """Shard numbers written by the `prepare` checkpoint (known once it has run)."""
    with open(checkpoints.prepare.get().output.summary) as handle:
        return [name.removeprefix("shard_") for name in json.load(handle)["shards"]]


def train_shard_ids():
    """Shards whose embeddings train the codebook: all, or `codebook.train_shards` spread evenly."""
    shards = shard_ids()
    n = config["codebook"]["train_shards"]
    if n is None or n >= len(shards):
        return shards
    return [shards[i * len(shards) // n] for i in range(n)]


def embedded_shard_ids():
    """Shards written to `embeddings/`: all of them, or only the training shards when not kept."""
    return shard_ids() if KEEP_EMBEDDINGS else train_shard_ids()


def per_shard(pattern, shards=shard_ids, complete=None):
    """Input function: `pattern` expanded over `shards()` (default: every shard).

    With `complete` (a file check), an existing file that fails it (truncated, corrupt, left by
    a crash or a copy) is deleted, so Snakemake rebuilds it instead of trusting it.
    """

    def paths(wildcards):
        expanded = expand(pattern, shard=shards())
        for path in expanded:
            if complete and os.path.exists(path) and not complete(path):
                logger.warning(f"{path} is incomplete or corrupt: removing it so that it is rebuilt")
                os.remove(path)
        return expanded

    return paths


def embeddings_output(path):
    """Embeddings are a kept output, or `temp()` when `keep_embeddings: false`."""
    return path if KEEP_EMBEDDINGS else temp(path)


def final_outputs():
    """Everything `rule all` builds; the model weights are listed so a missing download stops the run first."""
    return [
        model_checkpoint(),
        f"{OUT}/tokens.parquet",
        f"{OUT}/vocab.json",
        f"{OUT}/interleaved.jsonl",
        f"{OUT}/codebook_summary_K{K}.json",
        f"{OUT}/report/clustering_pca.png",
        f"{OUT}/report/token_usage.png",
        f"{OUT}/report/summary.md",
        f"{OUT}/sft",
    ]
