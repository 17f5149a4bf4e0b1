"""A GPU job whose torch cannot use the node's GPU fails at once, naming the driver, the env's CUDA
build and the env variant switch. torch's answers (and the driver's) are faked, so this runs on CPUs."""

from __future__ import annotations

import pytest
import torch

from structure_tokens.embed import gpu
from structure_tokens.embed.embedder import GPU_ALLOCATION_VARIABLES, resolve_device

CU13_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # PyPI's torch 2.13.0
CU126_ARCHS = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # PyTorch's cu126 build
PROPRIETARY = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {}  Thu Oct 19 18:56:32 UTC 2023\n"
OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {}  Release Build  (dvs-builder@U16)\n"


@pytest.fixture
def node(monkeypatch, tmp_path):
    """A GPU node as torch and the driver describe it; ``node(...)`` sets what they answer."""

    def configure(*, driver: str | None, driver_cuda: int = 0, build: str | None = "13.0", available: bool,
                  capability=(8, 0), archs=CU13_ARCHS, name="NVIDIA A100-SXM4-80GB", driver_file=PROPRIETARY):
        version_file = tmp_path / "version"
        if driver:
            version_file.write_text(driver_file.format(driver))
        monkeypatch.setattr(gpu, "DRIVER_VERSION_FILE", version_file)
        monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi either
        monkeypatch.setattr(torch._C, "_cuda_getDriverVersion", lambda: driver_cuda, raising=False)
        monkeypatch.setattr(torch.version, "cuda", build)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: archs)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
        for variable in GPU_ALLOCATION_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("SLURM_JOB_GPUS", "0")

    return configure


def test_a_driver_too_old_for_the_cuda_13_build_names_driver_build_and_the_cu12_switch(node):
    node(driver="535.129.03", driver_cuda=12020, available=False)  # torch: "driver too old", no device
    with pytest.raises(RuntimeError) as failure:
        resolve_device("auto")
    message = str(failure.value)
    assert message.startswith("model.device is 'auto' and this job was given GPUs (SLURM_JOB_GPUS=0), but torch ")
    assert "(a CUDA 13.0 build) cannot use CUDA" in message
    assert "NVIDIA driver 535.129.03 (CUDA 12.2 at most)" in message
    assert "CUDA 13.0 needs NVIDIA driver 580.65.06 or newer" in message
    assert "--config cuda_variant=cu12" in message and "envs/cu12/" in message
    assert message.count("\n") == 0  # one message


def test_a_driver_too_old_for_any_variant_says_to_update_it(node):
    node(driver="470.239.06", build="12.6", available=False)
    with pytest.raises(RuntimeError, match=r"NVIDIA driver 470.239.06, and CUDA 12.6 needs NVIDIA driver "
                                           r"525.60.13 or newer. Update the node's driver"):
        resolve_device("cuda")


def test_a_driver_new_enough_points_at_the_job_not_the_env(node):
    node(driver="580.95.05", driver_cuda=13000, driver_file=OPEN, available=False)
    with pytest.raises(RuntimeError, match=r"NVIDIA driver 580.95.05 \(CUDA 13.0 at most\), new enough for CUDA "
                                           r"13.0: check that the job can see its GPU"):
        resolve_device("auto")


def test_a_volta_gpu_without_kernels_in_the_cuda_13_build_fails_before_any_work(node):
    node(driver="580.95.05", available=True, capability=(7, 0), name="Tesla V100-SXM2-32GB")
    with pytest.raises(RuntimeError) as failure:
        resolve_device("auto")
    message = str(failure.value)
    assert "torch " in message and "(a CUDA 13.0 build) has kernels for sm_75, sm_80" in message
    assert "GPU 0, Tesla V100-SXM2-32GB (sm_70)" in message and "NVIDIA driver 580.95.05" in message
    assert "--config cuda_variant=cu12" in message


def test_a_blackwell_gpu_in_the_cuda_12_env_is_sent_to_the_cu13_variant(node):
    node(driver="575.57.08", build="12.6", available=True, capability=(12, 0), archs=CU126_ARCHS,
         name="NVIDIA RTX PRO 6000 Blackwell")
    with pytest.raises(RuntimeError, match=r"\(sm_120\); NVIDIA driver 575.57.08\. To run on it, set "
                                           r"`cuda_variant: cu13` \(`snakemake --config cuda_variant=cu13`"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("capability, archs", [((8, 9), CU13_ARCHS),  # Ada runs the sm_86 kernels
                                               ((12, 1), CU13_ARCHS), ((7, 0), CU126_ARCHS),
                                               ((10, 3), ["sm_90", "compute_100"])])  # PTX: compiled by the driver
def test_a_gpu_the_build_has_kernels_for_is_used(node, capability, archs):
    node(driver="580.95.05", available=True, capability=capability, archs=archs)
    assert resolve_device("auto") == torch.device("cuda")


def test_no_kernels_for_an_arch_specific_build_of_an_older_minor(node):
    node(driver="580.95.05", available=True, capability=(9, 1), archs=["sm_90a"])
    assert gpu.missing_kernels(0) is not None
