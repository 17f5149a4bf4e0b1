"""The ``model:`` config section: light to import, so the workflow checks it when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from structure_tokens.inputs.validate import ESM2_WINDOW, LONG_POLICIES
from structure_tokens.options import FromConfig

WINDOW = ESM2_WINDOW  # residues per forward pass (one definition, shared with the prepare stage)
DTYPE_NAMES = ("float16", "bfloat16", "float32")
DEVICES = ("auto", "cuda", "cpu")
ESM2_LAYERS = {"esm2_t6_8M_UR50D": 6, "esm2_t12_35M_UR50D": 12, "esm2_t30_150M_UR50D": 30,
               "esm2_t33_650M_UR50D": 33, "esm2_t36_3B_UR50D": 36, "esm2_t48_15B_UR50D": 48}  # released models


def resolve_layer(layer: int, num_layers: int) -> int:
    """The representation index of ``model.layer`` (0 = input embedding, -1 = last) in a ``num_layers`` model."""
    resolved = layer if layer >= 0 else num_layers + 1 + layer
    if not 0 <= resolved <= num_layers:
        raise ValueError(f"model.layer: {layer} is outside the model's layers: 0..{num_layers}, or "
                         f"-1..-{num_layers + 1} counted from the last ({num_layers} transformer layers)")
    return resolved


@dataclass(frozen=True)
class EmbedOptions(FromConfig):
    """How to embed; the fields are the `model:` config keys of the same names."""

    layer: int = -1
    device: str = "auto"
    dtype: str = "auto"
    token_budget: int = 16384
    long_policy: str = "windows"
    window_overlap: int = 256
    fast_attention: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"model.device must be one of {DEVICES}, got {self.device!r}")
        if self.long_policy not in LONG_POLICIES:
            raise ValueError(f"model.long_policy must be one of {LONG_POLICIES}, got {self.long_policy!r}")
        if self.dtype != "auto" and self.dtype not in DTYPE_NAMES:
            raise ValueError(f"model.dtype must be 'auto' or one of {DTYPE_NAMES}, got {self.dtype!r}")
        if not 0 <= self.window_overlap < WINDOW:
            raise ValueError(f"model.window_overlap must be in [0, {WINDOW}), got {self.window_overlap}")
