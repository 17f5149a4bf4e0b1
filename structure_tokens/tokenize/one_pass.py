"""One-pass mode (`keep_embeddings: false`): embed a shard and assign tokens on the device,
writing only the tokens file; the embeddings never reach the disk. Resumable within a shard."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch

from structure_tokens.codebook.assign import assign_torch
from structure_tokens.embed.embedder import embedding_attrs, load_embedder, resume_keys, shard_progress, stored_indices
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import read_shard
from structure_tokens.formats.tokens import TokenWriter

log = logging.getLogger(__name__)


def embed_and_tokenize_shard(shard_tsv: str | os.PathLike, checkpoint: str | os.PathLike,
                             codebook_npz: str | os.PathLike, out_h5: str | os.PathLike,
                             options: EmbedOptions = EmbedOptions()) -> dict[str, Any]:
    """Tokens of one shard, equal to `embed` then `tokenize` (same float16 rounding, same argmin).

    Tokens are assigned on the device once per forward batch, from embeddings that never leave it
    (only the uint16-sized tokens are copied back), and kept in resumable batches: a job that
    dies loses at most the batch in flight.
    """
    proteins = read_shard(shard_tsv)
    codebook = Codebook.load(codebook_npz)
    embedder, provenance = load_embedder(checkpoint, options)
    provenance.require_match(codebook.provenance, checkpoint, f"codebook {codebook_npz}")
    centroids = torch.from_numpy(codebook.centroids).to(embedder.device)
    plan = embedder.plan(proteins)
    with TokenWriter(out_h5, resume_keys(proteins, plan), codebook, embedding_attrs(provenance, embedder)) as writer:
        done = stored_indices(writer, proteins)
        if done:
            log.info("%s: %d proteins already tokenized by an interrupted run", out_h5, len(done))
        progress = shard_progress(shard_tsv, embedder, proteins, plan, done)
        for finished in embedder.embed_batches(proteins, plan, done, on_device=True):
            if not finished:
                continue  # a batch of windows of proteins that are not complete yet
            # the embeddings stay on the device: only the tokens of the batch come back, in one copy
            block = torch.cat([embedding for _, embedding in finished])
            flat = assign_torch(block, centroids).to(torch.int32).cpu().numpy().astype(np.uint16)
            for (index, _), tokens in zip(finished, np.split(flat, np.cumsum([len(e) for _, e in finished])[:-1])):
                writer.add(proteins[index].id, tokens)
            writer.flush()  # each forward batch is stored as it finishes: a killed job loses at most one
            progress.add(len(finished), len(flat))
        writer.skipped_ids = [proteins[i].id for i in plan.skipped]
    return {"n_proteins": len(proteins), "tokenized_now": progress.proteins, "resumed": len(done),
            "n_residues": progress.residues, "skipped_ids": writer.skipped_ids, **progress.finish()}
