"""Which embeddings a file belongs to: model, layer, width and where the weights came from.

One :class:`Provenance` is written into every embedding shard, codebook and tokens file, and
:meth:`Provenance.require_match` is the one check that two of them may be used together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

# where a checkpoint's weights came from (the ``weights`` attribute), decided from the file when it is loaded
RANDOM_TEST_WEIGHTS = "random-test"  # written by write_random_esm2_checkpoint: no biological meaning
FAIR_ESM_RELEASE = "fair-esm"  # a released model's name and depth, without the test marker
UNKNOWN_WEIGHTS = "unknown"  # any other checkpoint (fine-tuned, renamed), or a file older than the attribute
WEIGHT_ORIGINS = (RANDOM_TEST_WEIGHTS, FAIR_ESM_RELEASE, UNKNOWN_WEIGHTS)


@dataclass(frozen=True)
class Provenance:
    """The model (checkpoint name), representation layer and width of per-residue embeddings.

    ``weights`` (one of :data:`WEIGHT_ORIGINS`) is reported, not compared: two files match when
    model, layer and dim agree.
    """

    model_name: str
    layer: int
    dim: int
    weights: str = field(default=UNKNOWN_WEIGHTS, compare=False)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_ORIGINS:
            raise ValueError(f"weights origin {self.weights!r} is not one of {WEIGHT_ORIGINS}")

    def __str__(self) -> str:
        return f"model {self.model_name}, layer {self.layer}, dim {self.dim}"

    def require_match(self, other: "Provenance", this: str | os.PathLike, that: str | os.PathLike) -> None:
        """Fail, naming both, unless ``other`` (of ``that``) has the model, layer and dim of this one (of ``this``)."""
        if self != other:
            raise ValueError(f"{this} ({self}) does not match {that} ({other})")

    def attrs(self) -> dict[str, Any]:
        """The file attributes that store it (HDF5 attributes, codebook npz fields)."""
        return {"model_name": self.model_name, "layer": self.layer, "embed_dim": self.dim, "weights": self.weights}

    @classmethod
    def from_attrs(cls, path: str | os.PathLike, attrs: Mapping[str, Any]) -> "Provenance":
        """Read it back from a file's attributes; a ``ValueError`` naming the file and what is missing
        (the weights origin may be missing: :func:`weights_of`)."""
        try:
            return cls(str(attrs["model_name"]), int(attrs["layer"]), int(attrs["embed_dim"]), weights_of(attrs))
        except KeyError as missing:
            raise ValueError(f"{path}: no {missing} attribute (model provenance)") from None


def weights_of(record: Mapping[str, Any]) -> str:
    """The ``weights`` origin in a file's attributes, a codebook npz or a summary JSON; :data:`UNKNOWN_WEIGHTS`
    for one written before the field existed."""
    return str(record.get("weights", UNKNOWN_WEIGHTS))


def weights_note(model_name: str, weights: str) -> str | None:
    """The warning a report shows for ``weights`` (one of :data:`WEIGHT_ORIGINS`) but a fair-esm release."""
    if weights == RANDOM_TEST_WEIGHTS:
        return (f"{model_name} is a random test checkpoint (written by write_random_esm2_checkpoint): its tokens "
                "carry no biological meaning, and these numbers say nothing about a trained ESM-2")
    if weights == UNKNOWN_WEIGHTS:
        return (f"{model_name}: weights of unknown origin (not a released fair-esm model name with its depth); "
                "make sure the checkpoint holds trained weights")
    return None
