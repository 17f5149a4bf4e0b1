"""One-pass mode (`keep_embeddings: false`): embed a shard and assign tokens on the device,
writing only the tokens file; the embeddings never reach the disk."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from structure_tokens.atomic import atomic_output
from structure_tokens.codebook.kmeans import Codebook, assign_torch
from structure_tokens.embed.checkpoint import load_esm2
from structure_tokens.embed.embedder import EmbedOptions, Embedder
from structure_tokens.inputs.shards import read_shard
from structure_tokens.tokenize.assign import write_token_index

log = logging.getLogger(__name__)


def embed_and_tokenize_shard(shard_tsv: str | os.PathLike, checkpoint: str | os.PathLike,
                             codebook_npz: str | os.PathLike, out_h5: str | os.PathLike,
                             options: EmbedOptions = EmbedOptions(), *, block_rows: int = 65536) -> dict[str, Any]:
    """Tokens of one shard, equal to `embed` then `tokenize` (same float16 rounding, same argmin)."""
    proteins = read_shard(shard_tsv)
    codebook = Codebook.load(codebook_npz)
    model, alphabet, model_name = load_esm2(checkpoint)
    embedder = Embedder(model, alphabet, options)
    if (model_name, embedder.layer, model.embed_dim) != (codebook.model_name, codebook.layer, codebook.dim):
        raise ValueError(f"{checkpoint} (model {model_name}, layer {embedder.layer}, dim {model.embed_dim}) does "
                         f"not match codebook {codebook_npz} (model {codebook.model_name}, layer "
                         f"{codebook.layer}, dim {codebook.dim})")
    centroids = torch.from_numpy(codebook.centroids).to(embedder.device)
    order: list[int] = []
    tokens: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def assign_pending() -> None:  # one upload and one download per block of residues
        block = torch.from_numpy(np.concatenate(pending)).to(embedder.device)
        flat = assign_torch(block, centroids).to(torch.int32).cpu().numpy().astype(np.uint16)
        tokens.extend(np.split(flat, np.cumsum([len(p) for p in pending])[:-1]))
        pending.clear()

    start = time.perf_counter()
    for index, embedding in embedder.embed(proteins):
        order.append(index)
        pending.append(embedding)
        if sum(map(len, pending)) >= block_rows:
            assign_pending()
    if pending:
        assign_pending()
    lengths = [len(t) for t in tokens]
    with atomic_output(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("tokens", data=np.concatenate(tokens) if tokens else np.empty(0, np.uint16))
        write_token_index(h5, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
                          [proteins[i].id for i in order], [proteins[i].sequence_hash for i in order], codebook)
        skipped = [proteins[i].id for i in embedder.skipped]
        if skipped:
            h5.attrs["skipped_ids"] = ";".join(skipped)
    seconds = time.perf_counter() - start
    stats = {"shard": Path(shard_tsv).stem, "n_proteins": len(order), "n_residues": int(sum(lengths)),
             "skipped_ids": skipped, "seconds": round(seconds, 3), "device": str(embedder.device)}
    log.info("%s", stats)
    return stats
