"""The conda envs of the rules: which ones carry CUDA, and the CUDA variants of those.

The GPU envs exist in two variants, chosen with the config key ``cuda_variant`` (no file edited):
``cu13`` (``envs/<env>.yaml``, PyPI's torch, a CUDA 13.0 build) and ``cu12``
(``envs/cu12/<env>.yaml``, PyTorch's CUDA 12.6 build) for older drivers and pre-Turing GPUs. The
CPU envs that need torch get its CPU build, in one variant. ``tools/lock_envs.py`` writes the files
from this table; light to import (the main Snakemake process picks the files with it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CONFIG_KEY = "cuda_variant"
GPU_ENVS = ("embed", "evaluate")  # envs whose torch is a CUDA build (their rules run on GPU nodes)
CPU_TORCH_ENVS = ("codebook", "tokenize")  # envs with torch's CPU build (CPU nodes, no CUDA libraries)
TORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class CudaVariant:
    """One build of torch for the GPU envs and what a node needs to run it."""

    name: str  # value of `cuda_variant`
    folder: str  # env files, relative to the workflow folder
    cuda: str  # CUDA version of the torch build
    torch_tag: str | None  # local version of the torch wheel (`2.13.0+cu126`); None: PyPI's wheel
    min_driver: str  # oldest NVIDIA Linux driver that runs the build
    architectures: tuple[int, int]  # lowest and highest compute capability with kernels, e.g. (75, 120)

    @property
    def sm_range(self) -> str:
        """The architectures as ``sm_75 to sm_120``."""
        return f"sm_{self.architectures[0]} to sm_{self.architectures[1]}"

    def runs_on(self, capability: tuple[int, int]) -> bool:
        """Whether a GPU of compute ``capability`` (major, minor) runs this build's kernels (a build
        for sm_86 runs on sm_89: same major, lower minor)."""
        major, minor = capability
        return self.architectures[0] <= 10 * major + minor and major <= self.architectures[1] // 10

    @property
    def index(self) -> str | None:
        """PyTorch's pip index of this build (None: PyPI)."""
        return f"{TORCH_INDEX}/{self.torch_tag}" if self.torch_tag else None


VARIANTS = {
    # Turing (T4) .. Blackwell (B200); not Volta (V100) or older
    "cu13": CudaVariant("cu13", "envs", "13.0", None, "580.65.06", (75, 120)),
    # Maxwell, Pascal (P100), Volta (V100) .. Hopper (H100); not Blackwell
    "cu12": CudaVariant("cu12", "envs/cu12", "12.6", "cu126", "525.60.13", (50, 90)),
}
DEFAULT_VARIANT = "cu13"
CPU_TORCH_INDEX = f"{TORCH_INDEX}/cpu"


def env_file(workflow_dir: str, name: str, variant: str = DEFAULT_VARIANT) -> str:
    """Path of the env file of env ``name``: the ``variant``'s file for a GPU env, else the only one."""
    folder = VARIANTS[variant].folder if name in GPU_ENVS else "envs"
    return os.path.join(workflow_dir, folder, f"{name}.yaml")
