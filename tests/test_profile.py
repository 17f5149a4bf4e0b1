"""profiles/slurm as yte renders it: GPU routing of every GPU rule, request styles, deployment choices."""

from __future__ import annotations

import re

import pytest
import yaml
from yte import process_yaml

from conftest import REPO

PROFILE = REPO / "profiles/slurm/config.yaml"
SITE_VARIABLES = ("STRUCTURE_TOKENS_SLURM_GPU_PARTITION", "STRUCTURE_TOKENS_SLURM_GPU_MODEL",
                  "STRUCTURE_TOKENS_SLURM_GPU_REQUEST", "STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT",
                  "STRUCTURE_TOKENS_SLURM_PARTITION", "STRUCTURE_TOKENS_SLURM_ACCOUNT")


def gpu_rules() -> set[str]:
    """Rules whose `resources:` ask for a GPU (`gpu=1`)."""
    found = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint) \w+:)", smk.read_text()):
            name = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            if name and re.search(r"^\s*gpu=1,", block, flags=re.M):
                found.add(name.group(1))
    return found


def render(monkeypatch, **variables: str) -> dict:
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with PROFILE.open() as handle:
        return yaml.safe_load(yaml.safe_dump(process_yaml(handle)))


def test_every_gpu_rule_is_routed_to_the_gpu_partition(monkeypatch):
    assert gpu_rules() == {"embed", "embed_tokenize", "evaluate_structures"}
    profile = render(monkeypatch)
    assert set(profile["set-resources"]) == gpu_rules()
    for rule in gpu_rules():
        assert profile["set-resources"][rule] == {"slurm_partition": "gpu"}  # the rule's gpu=1 -> --gpus=1


def test_gres_style_and_gpu_model(monkeypatch):
    profile = render(monkeypatch, STRUCTURE_TOKENS_SLURM_GPU_REQUEST="gres",
                     STRUCTURE_TOKENS_SLURM_GPU_PARTITION="a100q", STRUCTURE_TOKENS_SLURM_GPU_MODEL="a100")
    for rule in gpu_rules():  # gpu=0 so the executor sends no --gpus, only --gres
        assert profile["set-resources"][rule] == {"slurm_partition": "a100q", "gpu": 0, "gres": "gpu:a100:1"}
    profile = render(monkeypatch, STRUCTURE_TOKENS_SLURM_GPU_MODEL="h100")
    assert profile["set-resources"]["embed"] == {"slurm_partition": "gpu", "gpu_model": "h100"}


def test_software_deployment_is_conda_or_none(monkeypatch):
    assert render(monkeypatch)["software-deployment-method"] == "conda"
    assert render(monkeypatch, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="none")["software-deployment-method"] is None
    with pytest.raises(Exception, match="STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT='apptainer'"):
        render(monkeypatch, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="apptainer")
    with pytest.raises(Exception, match="STRUCTURE_TOKENS_SLURM_GPU_REQUEST='gpu'"):
        render(monkeypatch, STRUCTURE_TOKENS_SLURM_GPU_REQUEST="gpu")
