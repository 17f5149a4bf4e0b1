"""The `tokenize` stage: the nearest-centroid token of every residue of a stored embedding shard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from structure_tokens.codebook.assign import assign, check_codebook_matches
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.tokens import write_token_index


def tokenize_shard(embedding_h5: str | os.PathLike, codebook_npz: str | os.PathLike,
                   out_h5: str | os.PathLike, *, block_rows: int = 65536) -> dict[str, Any]:
    """Nearest-centroid token of every residue of one shard, streamed in ``block_rows`` blocks."""
    codebook = Codebook.load(codebook_npz)
    with EmbeddingShard(embedding_h5) as shard, atomic_output(out_h5) as tmp:
        check_codebook_matches(embedding_h5, shard, codebook_npz, codebook)
        with h5py.File(tmp, "w") as h5:
            tokens = h5.create_dataset("tokens", shape=(shard.n_residues,), dtype=np.uint16)
            for start, block in shard.iter_blocks(block_rows):
                tokens[start:start + len(block)] = assign(block, codebook.centroids)
            write_token_index(h5, shard.offsets, shard.ids, shard.sequence_hashes, codebook)
        n_proteins = len(shard.ids)
        n_residues = shard.n_residues
    return {"shard": Path(embedding_h5).stem, "n_proteins": n_proteins, "n_residues": n_residues,
            "k": codebook.k, "codebook_sha256": codebook.sha256}
