"""SLURM routing and profiles/slurm: GPU rules carry their GPU request and partition themselves (so a
module prefix keeps them), fetch_model stays on the submit host, deployment and env cache settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from yte import process_yaml

from conftest import REPO, rule_blocks, write_test_config
from structure_tokens.slurm import gpu_job_resources

PROFILE = REPO / "profiles/slurm/config.yaml"
SITE_VARIABLES = ("STRUCTURE_TOKENS_SLURM_GPU_PARTITION", "STRUCTURE_TOKENS_SLURM_GPU_MODEL",
                  "STRUCTURE_TOKENS_SLURM_GPU_REQUEST", "STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT",
                  "STRUCTURE_TOKENS_SLURM_PARTITION", "STRUCTURE_TOKENS_SLURM_ACCOUNT",
                  "STRUCTURE_TOKENS_SLURM_STATUS_COMMAND", "STRUCTURE_TOKENS_CONDA_PREFIX", "XDG_CACHE_HOME")
PREFIX = "structure_tokens_"
HOST_SNAKEFILE = """configfile: "config.yaml"


module structure_tokens:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from structure_tokens as {prefix}*
"""
# Records every sbatch call (one line of arguments) and refuses it: nothing runs, nothing waits.
FAKE_SBATCH = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_SBATCH_LOG"
echo "fake sbatch: recorded, not submitted" >&2
exit 1
"""


def render(monkeypatch, **variables: str) -> dict:
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with PROFILE.open() as handle:
        return yaml.safe_load(yaml.safe_dump(process_yaml(handle)))


def test_gpu_rules_carry_their_gpu_request_and_the_profile_names_no_rule(monkeypatch):
    blocks = rule_blocks()
    gpu_rules = {name for name, block in blocks.items() if re.search(r"^\s*\*\*GPU_JOB,$", block, flags=re.M)}
    assert gpu_rules == {"embed", "embed_tokenize", "evaluate_structures"}
    assert not any(re.search(r"^\s*(gpu|slurm_partition|gres)=", block, flags=re.M) for block in blocks.values())
    assert "set-resources" not in render(monkeypatch)  # keyed by rule name: a module prefix would lose it
    assert re.search(r"^\s*localrule: True", blocks["fetch_model"], flags=re.M)
    assert not any(re.match(r"localrules:", line) for smk in (REPO / "rules").glob("*.smk")
                   for line in smk.read_text().splitlines())


def test_gpu_request_styles_models_and_partitions():
    assert gpu_job_resources({}) == {"gpu": 1, "slurm_partition": "gpu"}
    assert gpu_job_resources({"STRUCTURE_TOKENS_SLURM_GPU_MODEL": "h100"}) == {
        "gpu": 1, "gpu_model": "h100", "slurm_partition": "gpu"}
    assert gpu_job_resources({"STRUCTURE_TOKENS_SLURM_GPU_REQUEST": "gres", "STRUCTURE_TOKENS_SLURM_GPU_MODEL": "a100",
                              "STRUCTURE_TOKENS_SLURM_GPU_PARTITION": "a100q"}) == {
        "gpu": 0, "gres": "gpu:a100:1", "slurm_partition": "a100q"}  # gpu=0: only --gres is sent
    with pytest.raises(ValueError, match="STRUCTURE_TOKENS_SLURM_GPU_REQUEST='gpu'"):
        gpu_job_resources({"STRUCTURE_TOKENS_SLURM_GPU_REQUEST": "gpu"})


def test_software_deployment_is_conda_or_none(monkeypatch):
    assert render(monkeypatch)["software-deployment-method"] == "conda"
    assert render(monkeypatch, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="none")["software-deployment-method"] is None
    with pytest.raises(Exception, match="STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT='apptainer'"):
        render(monkeypatch, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="apptainer")


def test_one_conda_env_cache_for_every_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert render(monkeypatch)["conda-prefix"] == str(tmp_path / ".cache/structure_tokens/conda")
    assert render(monkeypatch, XDG_CACHE_HOME="/cache")["conda-prefix"] == "/cache/structure_tokens/conda"
    assert render(monkeypatch, STRUCTURE_TOKENS_CONDA_PREFIX="/project/envs")["conda-prefix"] == "/project/envs"


def host_workflow(workdir: Path, checkpoint: Path | None) -> Path:
    """A host workflow in ``workdir`` that uses this one as a module, its rules renamed with PREFIX;
    without ``checkpoint``, fetch_model downloads the weights into ``workdir/models``."""
    if checkpoint:
        write_test_config(workdir, checkpoint)
    else:
        write_test_config(workdir, Path(), model={"checkpoint": None, "cache_dir": str(workdir / "models")})
    (workdir / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=REPO / "Snakefile", prefix=PREFIX))
    return workdir


def snakemake(workdir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
                          capture_output=True, text=True, cwd=workdir, env=env, timeout=600)


def fake_slurm_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """PATH with a recording ``sbatch`` (and an empty ``sacct``, ``scancel``) first; jobs use this Python."""
    bin_dir = tmp_path / "fake_slurm"
    bin_dir.mkdir(exist_ok=True)
    for name, script in (("sbatch", FAKE_SBATCH), ("sacct", "#!/bin/sh\n"), ("scancel", "#!/bin/sh\n")):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in SITE_VARIABLES}
    env.update(STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="none", FAKE_SBATCH_LOG=str(tmp_path / "sbatch.log"), **variables)
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]])
    return env


def sbatch_calls(tmp_path: Path) -> dict[str, str]:
    """The recorded sbatch options of each job (its command left out), by the rule and wildcards
    named in the plugin's ``--comment``."""
    calls = {}
    for line in (tmp_path / "sbatch.log").read_text().splitlines():
        comment = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_(\w+))?'? ", line)
        calls[f"{comment.group(1)} {comment.group(2) or ''}".strip()] = line.split(" --wrap", 1)[0]
    return calls


@pytest.mark.parametrize("style", ["gpus", "gres"])
def test_prefixed_module_sends_gpu_jobs_to_the_gpu_partition(tmp_path, tiny_checkpoint, style):
    """`use rule * from structure_tokens as structure_tokens_*` under the SLURM profile: every embed
    job's sbatch line asks for the GPU partition and one GPU (`--gpus=1`, or `--gres=gpu:1`)."""
    workdir = host_workflow(tmp_path, tiny_checkpoint)
    env = fake_slurm_environment(tmp_path, STRUCTURE_TOKENS_SLURM_GPU_REQUEST=style,
                                 STRUCTURE_TOKENS_SLURM_PARTITION="cpu")
    prepared = snakemake(workdir, "--cores", "1", "--until", f"{PREFIX}prepare", env=env)  # shards known
    assert prepared.returncode == 0, prepared.stderr[-5000:]
    run = snakemake(workdir, "--profile", str(REPO / "profiles/slurm"), "--retries", "0", env=env)
    assert run.returncode != 0  # every submission was refused by the fake sbatch
    calls = sbatch_calls(tmp_path)
    assert sorted(calls) == [f"{PREFIX}embed {shard}" for shard in ("00000", "00001", "00002")], run.stderr[-5000:]
    for line in calls.values():
        assert " -p gpu " in line and " -p cpu " not in line, line
        if style == "gpus":
            assert "--gpus=1" in line and "--gres" not in line, line
        else:
            assert "--gres=gpu:1" in line and "--gpus" not in line, line


def test_prefixed_module_downloads_the_model_on_the_submit_host(tmp_path):
    """fetch_model is a local rule whatever its name: it runs in the snakemake process (here it fails,
    offline), while the compute jobs, such as prepare, go to sbatch."""
    workdir = host_workflow(tmp_path, None)
    env = fake_slurm_environment(tmp_path, STRUCTURE_TOKENS_SLURM_PARTITION="cpu",
                                 HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")  # offline
    run = snakemake(workdir, "--profile", str(REPO / "profiles/slurm"), "--retries", "0", env=env)
    assert run.returncode != 0
    assert sorted(sbatch_calls(tmp_path)) == [f"{PREFIX}prepare"], run.stderr[-5000:]
    assert (workdir / "results/logs/fetch_model.log").read_text()  # it ran here
    assert "localrules directive specifies rules that are not present" not in run.stderr


def test_the_workflow_extra_installs_what_the_profile_and_the_report_need():
    """`pip install -e ".[workflow]"`: a SLURM plugin with the profile's options (slurm-jobname-prefix
    came in 2.2), and pygments, which `snakemake --report` needs (snakemake's `reports` extra)."""
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["workflow"]
    assert any(re.fullmatch(r"snakemake\[reports\]>=9(\.\d+)*", requirement) for requirement in extra), extra
    floor = next(re.fullmatch(r"snakemake-executor-plugin-slurm>=(\d+)\.(\d+)", r) for r in extra if "slurm" in r)
    assert (int(floor.group(1)), int(floor.group(2))) >= (2, 2)
    assert "slurm-jobname-prefix" in PROFILE.read_text()
