"""``codebook/codebook_K{K}.npz``: K centroids, the model and layer they belong to; no pickle."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from structure_tokens.formats.atomic import atomic_output
from structure_tokens.formats.provenance import UNKNOWN_WEIGHTS, Provenance, weights_of

MAX_K = 2**16  # tokens are stored as uint16


@dataclass(frozen=True)
class Codebook:
    """K centroids in embedding space plus the model/layer they were trained on."""

    centroids: np.ndarray  # float32 (k, dim)
    model_name: str
    layer: int
    seed: int
    n_train: int
    weights: str = UNKNOWN_WEIGHTS  # origin of the model's weights (structure_tokens.formats.provenance)

    @classmethod
    def trained(cls, centroids: np.ndarray, provenance: Provenance, *, seed: int, n_train: int) -> "Codebook":
        """A codebook of ``centroids`` fit on embeddings of ``provenance``."""
        if centroids.ndim != 2 or centroids.shape[1] != provenance.dim:
            raise ValueError(f"centroids of shape {centroids.shape} do not fit embeddings of {provenance}")
        return cls(centroids, provenance.model_name, provenance.layer, seed, n_train, provenance.weights)

    @property
    def provenance(self) -> Provenance:
        """Model, layer, dim and weights origin of the embeddings it was trained on."""
        return Provenance(self.model_name, self.layer, self.dim, self.weights)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def sha256(self) -> str:
        """Hex digest of the float32 centroid bytes: identifies the codebook in token files."""
        return hashlib.sha256(np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()).hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write the npz of docs/DESIGN.md atomically; only plain arrays, no pickled objects."""
        with atomic_output(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                centroids=np.ascontiguousarray(self.centroids, dtype=np.float32),
                k=np.int64(self.k),
                dim=np.int64(self.dim),
                seed=np.int64(self.seed),
                layer=np.int64(self.layer),
                model_name=np.str_(self.model_name),
                weights=np.str_(self.weights),
                sha256=np.str_(self.sha256),
                n_train=np.int64(self.n_train),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Codebook":
        """Read a codebook npz; fail if its centroids do not match the stored sha256 or shape."""
        with np.load(path, allow_pickle=False) as npz:
            try:
                codebook = cls(
                    centroids=np.asarray(npz["centroids"], dtype=np.float32),
                    model_name=str(npz["model_name"]),
                    layer=int(npz["layer"]),
                    seed=int(npz["seed"]),
                    n_train=int(npz["n_train"]),
                    weights=weights_of(npz),
                )
                stored_sha, stored_shape = str(npz["sha256"]), (int(npz["k"]), int(npz["dim"]))
            except KeyError as missing:
                raise ValueError(f"{path}: codebook npz lacks {missing}") from None
        if codebook.sha256 != stored_sha:
            raise ValueError(f"{path}: centroids sha256 {codebook.sha256} != stored {stored_sha} (corrupt codebook)")
        if (codebook.k, codebook.dim) != stored_shape:
            raise ValueError(f"{path}: centroids shape {codebook.centroids.shape} != stored k, dim {stored_shape}")
        return codebook
