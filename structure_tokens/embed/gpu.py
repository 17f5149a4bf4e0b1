"""Why this env's torch cannot use the node's GPU, in one message: the NVIDIA driver, the env's CUDA
build and the config switch to the env variant that fits (``cuda_variant``, see structure_tokens.envs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import torch

from structure_tokens.envs import CONFIG_KEY, VARIANTS, CudaVariant

DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")  # written by the NVIDIA kernel module


def driver_version() -> str | None:
    """Version of the node's NVIDIA driver, e.g. ``535.129.03`` (None when there is none)."""
    try:
        match = re.search(r"Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s", DRIVER_VERSION_FILE.read_text())
        if match:
            return match.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def driver_description() -> str:
    """``NVIDIA driver 535.129.03 (CUDA 12.2 at most)``, as far as the node tells."""
    version = driver_version()
    if version is None:
        return "no NVIDIA driver found (no /proc/driver/nvidia/version, no nvidia-smi)"
    try:
        cuda = torch._C._cuda_getDriverVersion()  # the newest CUDA the driver runs, e.g. 12020
    except (AttributeError, RuntimeError):
        cuda = 0
    return f"NVIDIA driver {version}" + (f" (CUDA {cuda // 1000}.{cuda % 1000 // 10} at most)" if cuda else "")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def build_variant() -> CudaVariant | None:
    """The env variant whose CUDA build this torch is (None for a CPU-only build or another CUDA)."""
    cuda = torch.version.cuda or ""
    return next((v for v in VARIANTS.values() if cuda.split(".")[0] == v.cuda.split(".")[0]), None)


def switch_to(variant: CudaVariant) -> str:
    """How to run the GPU rules in ``variant``'s envs."""
    return (f"set `{CONFIG_KEY}: {variant.name}` (`snakemake --config {CONFIG_KEY}={variant.name}`; envs in "
            f"{variant.folder}/: torch for CUDA {variant.cuda}, NVIDIA driver {variant.min_driver} or newer, "
            f"GPUs {variant.sm_range}); create them first with `--conda-create-envs-only`")


def build_description() -> str:
    return f"torch {torch.__version__} ({'a CUDA ' + torch.version.cuda if torch.version.cuda else 'a CPU-only'} build)"


def unusable_cuda_advice() -> str:
    """What to do when torch sees no usable GPU although the job asks for one."""
    if not torch.version.cuda:
        return ("A CPU-only build means the job's env has the wrong torch: rebuild it from envs/embed.yaml (a CUDA "
                "build) or install a CUDA build.")
    variant, found, driver = build_variant(), driver_version(), driver_description()
    if found is None:
        return f"This node has {driver}: run the GPU rules on GPU nodes."
    if variant is None:
        return f"This node has {driver}; check it against CUDA {torch.version.cuda}, or use the workflow's envs."
    if version_tuple(found) >= version_tuple(variant.min_driver):
        return (f"This node has {driver}, new enough for CUDA {variant.cuda}: check that the job can see its "
                "GPU (`nvidia-smi` inside a job, CUDA_VISIBLE_DEVICES, device permissions).")
    fitting = [v for v in VARIANTS.values() if version_tuple(found) >= version_tuple(v.min_driver)]
    advice = (f"To use this driver, {switch_to(fitting[0])}." if fitting
              else "Update the node's driver, or run on nodes whose driver is newer.")
    return (f"This node has {driver}, and CUDA {variant.cuda} needs NVIDIA driver {variant.min_driver} or newer. "
            f"{advice}")


def missing_kernels(index: int) -> str | None:
    """Why torch has no kernels for GPU ``index`` (None when it has), with the variant that has."""
    major, minor = torch.cuda.get_device_capability(index)
    built = torch.cuda.get_arch_list()
    for arch in built:
        kind, number, suffix = re.fullmatch(r"(sm|compute)_(\d+)(\w*)", arch).groups()
        arch_major, arch_minor = int(number) // 10, int(number) % 10
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return None  # PTX, compiled for this GPU by the driver
        if kind == "sm" and arch_major == major and (arch_minor == minor or (arch_minor < minor and suffix != "a")):
            return None
    variant = build_variant()
    fitting = [v for v in VARIANTS.values() if v != variant and v.runs_on((major, minor))]
    advice = (f"To run on it, {switch_to(fitting[0])}" if fitting
              else "No env variant has kernels for it: ask SLURM for another GPU model "
                   "(STRUCTURE_TOKENS_SLURM_GPU_MODEL)")
    return (f"{build_description()} has kernels for {', '.join(built) or 'no GPU'} only, not for this node's GPU "
            f"{index}, {torch.cuda.get_device_name(index)} (sm_{major}{minor}); {driver_description()}. {advice}.")
