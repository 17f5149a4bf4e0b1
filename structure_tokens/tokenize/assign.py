"""Tokenize an embedding shard with a codebook; read and write the tokens HDF5 (docs/DESIGN.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from structure_tokens.atomic import atomic_output
from structure_tokens.codebook.kmeans import Codebook, assign
from structure_tokens.codebook.sample import shard_model
from structure_tokens.embed.store import EmbeddingShard

FORMAT_VERSION = 1
STRING_DTYPE = h5py.string_dtype("utf-8")


class TokenShard:
    """Reader of ``tokens/shard_NNNNN.h5``: ``ids``, ``sequence_hashes``, ``offsets``, ``tokens``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = h5py.File(self.path, "r")
        try:
            self.ids: list[str] = list(self._h5["ids"].asstr()[()])
            self.sequence_hashes: list[str] = list(self._h5["sequence_hash"].asstr()[()])
            self.offsets: np.ndarray = self._h5["offsets"][()].astype(np.int64)
            self.attrs: dict[str, Any] = dict(self._h5.attrs)
            self.tokens: np.ndarray = self._h5["tokens"][()]
        except KeyError as missing:
            self._h5.close()
            raise ValueError(f"{self.path}: not a tokens file ({missing})") from None
        if len(self.offsets) != len(self.ids) + 1 or self.offsets[-1] != len(self.tokens):
            self._h5.close()
            raise ValueError(f"{self.path}: offsets do not match {len(self.ids)} ids and {len(self.tokens)} tokens")

    @property
    def k(self) -> int:
        return int(self.attrs["k"])

    @property
    def codebook_sha256(self) -> str:
        return str(self.attrs["codebook_sha256"])

    def __len__(self) -> int:
        return len(self.ids)

    def protein(self, i: int) -> np.ndarray:
        """Tokens of the ``i``-th protein of the file (file order)."""
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "TokenShard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a readable, self-consistent tokens file."""
    try:
        with TokenShard(path):
            return True
    except (OSError, ValueError, KeyError):
        return False


def check_codebook_matches(embedding_h5: str | os.PathLike, shard: EmbeddingShard,
                           codebook_npz: str | os.PathLike, codebook: Codebook) -> None:
    """Fail unless the shard's model, layer and dim are those the codebook was trained on."""
    model_name, layer = shard_model(embedding_h5, shard.attrs)
    if (model_name, layer, shard.dim) != (codebook.model_name, codebook.layer, codebook.dim):
        raise ValueError(
            f"{embedding_h5} (model {model_name}, layer {layer}, dim {shard.dim}) does not match "
            f"codebook {codebook_npz} (model {codebook.model_name}, layer {codebook.layer}, dim {codebook.dim})"
        )


def write_token_index(h5: h5py.File, offsets: np.ndarray, ids: list[str], sequence_hashes: list[str],
                      codebook: Codebook) -> None:
    """Everything of a tokens file but the ``tokens`` dataset itself."""
    h5.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
    h5.create_dataset("ids", data=list(ids), dtype=STRING_DTYPE)
    h5.create_dataset("sequence_hash", data=list(sequence_hashes), dtype=STRING_DTYPE)
    h5.attrs.update(format_version=FORMAT_VERSION, codebook_sha256=codebook.sha256, k=codebook.k,
                    model_name=codebook.model_name, layer=codebook.layer)


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
