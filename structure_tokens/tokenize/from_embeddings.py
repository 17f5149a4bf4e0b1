"""The `tokenize` stage: the nearest-centroid token of every residue of a stored embedding shard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from structure_tokens.codebook.assign import assign, check_codebook_matches
from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.checksums import create_shard_file, record_verified
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.tokens import create_tokens_dataset, write_token_index


def tokenize_shard(embedding_h5: str | os.PathLike, codebook_npz: str | os.PathLike,
                   out_h5: str | os.PathLike, *, block_rows: int = 65536) -> dict[str, Any]:
    """Nearest-centroid token of every residue of one shard, streamed in ``block_rows`` blocks.

    The tokens file is renamed into place when complete and recorded as verified.
    """
    codebook = Codebook.load(codebook_npz)
    with EmbeddingShard(embedding_h5) as shard, atomic_output(out_h5) as tmp:
        check_codebook_matches(embedding_h5, shard, codebook_npz, codebook)
        with create_shard_file(tmp) as h5:
            tokens = create_tokens_dataset(h5, shard.n_residues)
            for start, block in shard.iter_blocks(block_rows):
                tokens[start:start + len(block)] = assign(block, codebook.centroids)
            write_token_index(h5, shard.offsets, shard.ids, shard.sequence_hashes, codebook)
        n_proteins = len(shard.ids)
        n_residues = shard.n_residues
    record_verified(out_h5)
    return {"shard": Path(embedding_h5).stem, "n_proteins": n_proteins, "n_residues": n_residues,
            "k": codebook.k, "codebook_sha256": codebook.sha256}
