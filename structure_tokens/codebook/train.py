"""The `train_codebook` stage: sample residues from the embedding shards, fit, write codebook and stats."""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

from structure_tokens.codebook.assign import assign, mean_squared_error
from structure_tokens.codebook.kmeans import train_codebook
from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.codebook.sample import sample_residues
from structure_tokens.formats.atomic import write_json
from structure_tokens.formats.codebook import Codebook


def draw_training_sample(embedding_paths: Sequence[str | os.PathLike], options: CodebookOptions,
                         seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, heldout, info)`` residues of the shards, drawn as `train_codebook` draws them."""
    return sample_residues(embedding_paths, per_shard=options.sample_per_shard, max_total=options.max_train_residues,
                           holdout_fraction=options.holdout_fraction, seed=seed)


def train_codebook_from_shards(
    embedding_paths: Sequence[str | os.PathLike],
    out_npz: str | os.PathLike,
    out_json: str | os.PathLike,
    options: CodebookOptions,
) -> Codebook:
    """Sample residues from every shard, train the codebook, write it and a training JSON."""
    train, heldout, info = draw_training_sample(embedding_paths, options, options.seed)
    codebook, stats = train_codebook(train, options, info["provenance"])
    heldout_mse = mean_squared_error(heldout, codebook.centroids, assign(heldout, codebook.centroids))
    training = {
        "k": options.k, "dim": codebook.dim, "seed": options.seed, "model_name": codebook.model_name,
        "layer": codebook.layer, "weights": codebook.weights,
        "n_shards": info["n_shards"], "n_train": info["n_train"], "n_heldout": info["n_heldout"],
        "n_train_proteins": info["n_train_proteins"], "n_heldout_proteins": info["n_heldout_proteins"],
        "holdout_fraction": options.holdout_fraction, "per_shard_quota": info["per_shard_quota"],
        "batch_size": options.batch_size, "max_iter": options.max_iter, **stats,
        "train_mse": mean_squared_error(train, codebook.centroids, assign(train, codebook.centroids)),
        "heldout_mse": None if math.isnan(heldout_mse) else heldout_mse,
        "codebook_sha256": codebook.sha256,
    }
    codebook.save(out_npz)
    write_json(out_json, training)
    return codebook
