"""The workflow on a real (local, one-node) SLURM cluster through `profiles/slurm`.

Start the cluster first: `tests/slurm/cluster.sh start` (root). Without it these tests are
skipped, unless STRUCTURE_TOKENS_REQUIRE_SLURM=1 (CI), where a missing cluster fails them.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import yaml

from conftest import write_test_config

REPO = Path(__file__).resolve().parents[1]
REQUIRE_ENV = "STRUCTURE_TOKENS_REQUIRE_SLURM"
SHARDS = ("00000", "00001", "00002")
RUN_TIMEOUT_S = 420

pytestmark = pytest.mark.slurm

# Test-only profile settings layered over profiles/slurm/config.yaml: fast status polling, logs
# of successful jobs kept, and threads and memory that fit the 2-CPU test node.
PROFILE_OVERRIDES = {
    "slurm-init-seconds-before-status-checks": 1,
    "seconds-between-status-checks": 1,
    "slurm-keep-successful-logs": True,
    "latency-wait": 5,
    "max-threads": 2,
}
RESOURCES = {rule: {"mem_mb": 3000} for rule in ("embed", "train_codebook", "heldout_metrics")}
# `train_codebook` asks for 60 MB on its first attempt: SLURM kills it for exceeding its memory.
OOM_RULE = "train_codebook"
OOM_RESOURCES = {**RESOURCES, OOM_RULE: {"mem_mb": "60 if attempt == 1 else 3000"}}


def cluster_problem() -> str | None:
    """Why the local SLURM cluster cannot run jobs, or None when it can."""
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "sinfo not found (run tests/slurm/cluster.sh start)"
    if result.returncode != 0:
        return f"sinfo failed: {result.stderr.strip()} (run tests/slurm/cluster.sh start)"
    states = set(result.stdout.split())
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no SLURM node accepts jobs (states: {sorted(states)})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = cluster_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the SLURM test cluster is not usable: {problem}")
    pytest.skip(problem)


@dataclass(frozen=True)
class SlurmJob:
    """One sbatch submission of the run, as Snakemake logged it and SLURM still knows it."""

    slurm_id: str
    rule: str
    wildcards: str
    log: Path
    fields: dict[str, str]  # `scontrol show job` key=value pairs

    @property
    def state(self) -> str:
        return self.fields.get("JobState", "")


SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
JOB_COMMENT = re.compile(r"rule_(.+?)(?:_wildcards_(.+))?")  # the plugin's sbatch --comment


def scontrol_job(slurm_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", slurm_id],
                         capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def submitted_jobs(log_text: str) -> list[SlurmJob]:
    """Every SLURM submission named in a Snakemake log, in submission order."""
    jobs = []
    for slurm_id, log in SUBMITTED.findall(log_text):
        fields = scontrol_job(slurm_id)
        rule, wildcards = JOB_COMMENT.fullmatch(fields["Comment"]).groups(default="")
        jobs.append(SlurmJob(slurm_id, rule, wildcards, Path(log), fields))
    return jobs


def slurm_run_id(log_text: str) -> str:
    match = RUN_ID.search(log_text)
    assert match, "Snakemake did not log its SLURM run ID"
    return match.group(1)


def queue(run_id: str) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job of the run that squeue still lists."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--name", run_id, "-o", "%i|%T|%k"],
                         capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line]


def write_test_profile(directory: Path, set_resources: dict[str, dict] = RESOURCES) -> Path:
    """profiles/slurm with the test overrides merged in (its own values are kept)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile.update(PROFILE_OVERRIDES)
    for rule, resources in set_resources.items():
        profile.setdefault("set-resources", {}).setdefault(rule, {}).update(resources)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def environment(**variables: str) -> dict[str, str]:
    """Jobs inherit this environment (sbatch --export=ALL): this Python, no conda, ``variables``."""
    env = dict(os.environ, STRUCTURE_TOKENS_SOFTWARE_DEPLOYMENT="none", **variables)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def wait_for(condition: Callable[[], object], what: str, run: Run | None = None,
             timeout_s: float = RUN_TIMEOUT_S) -> None:
    """Poll `condition` until it holds; fail on timeout or when `run` exits first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if run is not None and run.process.poll() is not None:
            pytest.fail(f"snakemake exited before {what}:\n{run.log[-8000:]}")
        if time.monotonic() > deadline:
            if run is not None:
                run.process.kill()
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


class Run:
    """One `snakemake --profile` process in `workdir`, logging to `workdir/snakemake-<n>.log`."""

    def __init__(self, workdir: Path, profile: Path, config: Path, *extra: str, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.log_path = workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.log')))}.log"
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), *extra, "--profile", str(profile), "--configfile", str(config)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or environment(),
                                            cwd=workdir)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def finish(self) -> str:
        try:
            returncode = self.process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"snakemake did not finish in {RUN_TIMEOUT_S} s:\n{self.log[-8000:]}")
        if returncode != 0:
            pytest.fail(f"snakemake failed ({returncode}):\n{self.log[-8000:]}")
        return self.log


def running_jobs(run: Run, rule: str) -> dict[str, str]:
    """SLURM id of every RUNNING job of `rule`, by the job's wildcards (empty before submission)."""
    match = RUN_ID.search(run.log)
    if not match:
        return {}
    prefix = f"rule_{rule}_wildcards_"
    return {comment.removeprefix(prefix): job_id for job_id, state, comment in queue(match.group(1))
            if state == "RUNNING" and comment.startswith(prefix)}


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            digest.update(f"{file.relative_to(path) if path.is_dir() else ''}\0".encode() + file.read_bytes())
    return digest.hexdigest()


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as h5:
        return {name: h5[name][()] for name in h5}


def assert_same_results(results: Path, reference: Path) -> None:
    """Tokens, codebook and LLM outputs of two runs are identical."""
    for shard in SHARDS:
        got, want = h5_arrays(results / f"tokens/shard_{shard}.h5"), h5_arrays(reference / f"tokens/shard_{shard}.h5")
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"tokens/shard_{shard}.h5:/{name}")
    codebooks = [np.load(r / "codebook/codebook_K16.npz", allow_pickle=False) for r in (results, reference)]
    assert str(codebooks[0]["sha256"]) == str(codebooks[1]["sha256"])
    for name in ("vocab.json", "interleaved.jsonl", "tokens.parquet", "token_counts"):
        assert file_digest(results / name) == file_digest(reference / name), name


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, tiny_checkpoint) -> Path:
    """The reference: the same config run with the local executor."""
    workdir = tmp_path_factory.mktemp("local")
    config = write_test_config(workdir, tiny_checkpoint)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=environment())
    if result.returncode != 0:
        pytest.fail(f"local reference run failed:\n{result.stderr[-8000:]}")
    return workdir / "results"


@dataclass(frozen=True)
class SlurmRun:
    results: Path
    jobs: list[SlurmJob]
    cancelled_id: str


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, tiny_checkpoint) -> SlurmRun:
    """The whole workflow through the profile; one running embed job is cancelled with scancel
    and the first attempt of OOM_RULE runs out of memory."""
    workdir = tmp_path_factory.mktemp("slurm")
    profile = write_test_profile(workdir / "profile", OOM_RESOURCES)
    run = Run(workdir, profile, write_test_config(workdir, tiny_checkpoint))
    wait_for(lambda: SHARDS[1] in running_jobs(run, "embed"), f"embed of shard {SHARDS[1]} running", run)
    cancelled_id = running_jobs(run, "embed")[SHARDS[1]]
    subprocess.run(["scancel", cancelled_id], check=True)
    log = run.finish()
    return SlurmRun(workdir / "results", submitted_jobs(log), cancelled_id)


def test_every_compute_job_is_a_slurm_job(slurm_run):
    completed = [job for job in slurm_run.jobs if job.state == "COMPLETED"]
    assert sorted((job.rule, job.wildcards) for job in completed) == sorted(
        [("prepare", ""), ("train_codebook", ""), ("vocab", ""), ("codebook_summary", ""), ("report", ""),
         ("finetune_data", ""), ("heldout_metrics", "")]
        + [(rule, shard) for rule in ("embed", "tokenize", "llm_outputs", "finetune_shard") for shard in SHARDS])
    for job in slurm_run.jobs:
        assert job.fields["JobName"].startswith("structure_tokens_")
        assert job.log.is_file(), job


def test_embed_jobs_request_a_gpu_on_the_gpu_partition(slurm_run):
    for job in slurm_run.jobs:
        gpu_requested = "gpu" in job.fields.get("TresPerJob", "")  # --gpus=1 (not --gres: TresPerNode)
        assert gpu_requested == (job.rule == "embed"), job.fields
        assert job.fields["Partition"] == ("gpu" if job.rule == "embed" else "cpu"), job.fields
    assert {job.fields["NumCPUs"] for job in slurm_run.jobs if job.rule == "embed"} == {"2"}


def test_gres_style_asks_for_the_gpu_with_gres(cluster, tmp_path, tiny_checkpoint):
    """STRUCTURE_TOKENS_SLURM_GPU_REQUEST=gres: GPU jobs use --gres=gpu:1 instead of --gpus=1."""
    profile, config = write_test_profile(tmp_path / "profile"), write_test_config(tmp_path, tiny_checkpoint)
    env = environment(STRUCTURE_TOKENS_SLURM_GPU_REQUEST="gres")
    jobs = submitted_jobs(Run(tmp_path, profile, config, "--until", "prepare", env=env).finish())
    targets = [f"results/embeddings/shard_{shard}.h5" for shard in SHARDS]  # known once `prepare` has run
    jobs += submitted_jobs(Run(tmp_path, profile, config, *targets, env=env).finish())
    assert sorted(job.rule for job in jobs) == ["embed"] * len(SHARDS) + ["prepare"]
    for job in jobs:
        per_node, per_job = job.fields.get("TresPerNode", ""), job.fields.get("TresPerJob", "")
        assert ("gpu" in per_node) == (job.rule == "embed") and "gpu" not in per_job, job.fields
        assert job.fields["Partition"] == ("gpu" if job.rule == "embed" else "cpu")


def test_slurm_results_equal_local_results(slurm_run, local_results):
    assert_same_results(slurm_run.results, local_results)


def test_cancelled_job_is_retried(slurm_run):
    attempts = [job for job in slurm_run.jobs if (job.rule, job.wildcards) == ("embed", SHARDS[1])]
    assert [job.slurm_id for job in attempts][0] == slurm_run.cancelled_id
    assert [job.state for job in attempts] == ["CANCELLED", "COMPLETED"]


def test_out_of_memory_job_is_retried_with_more_memory(slurm_run):
    attempts = [job for job in slurm_run.jobs if job.rule == OOM_RULE]
    assert [job.state for job in attempts] == ["FAILED", "COMPLETED"], [job.fields for job in attempts]
    assert [job.fields["MinMemoryNode"] for job in attempts] == ["60M", "3000M"]
    assert "exceeded memory limit" in attempts[0].log.read_text()


def test_resume_after_snakemake_is_killed_reruns_only_unfinished_shards(cluster, tmp_path, tiny_checkpoint,
                                                                        local_results):
    profile, config = write_test_profile(tmp_path / "profile"), write_test_config(tmp_path, tiny_checkpoint)
    embeddings = tmp_path / "results/embeddings"
    first = Run(tmp_path, profile, config)

    def embedding_after_one_finished() -> set[str]:
        """Shards being embedded while another shard's file is already on disk."""
        on_disk = {path.stem.removeprefix("shard_") for path in embeddings.glob("shard_*.h5")}
        return set(running_jobs(first, "embed")) - on_disk if on_disk else set()

    wait_for(embedding_after_one_finished, "one shard embedded and another one embedding", first)
    killed = embedding_after_one_finished()
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    # Jobs outlive a killed Snakemake: cancel them, as a user would (profiles/slurm/README.md).
    run_id = slurm_run_id(first.log)
    subprocess.run(["scancel", "--name", run_id], check=True)
    wait_for(lambda: not any(state in ("RUNNING", "COMPLETING") for _, state, _ in queue(run_id)),
             "the cancelled jobs to end", timeout_s=60)
    # Outputs are renamed into place only when complete: every shard file on disk is finished.
    finished = {path: path.stat() for path in embeddings.glob("shard_*.h5")}
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                    str(tmp_path), "--configfile", str(config), "--unlock"], check=True, capture_output=True)
    rerun = submitted_jobs(Run(tmp_path, profile, config).finish())

    rerun_shards = sorted(job.wildcards for job in rerun if job.rule == "embed")
    assert rerun_shards == sorted(set(SHARDS) - {path.stem.removeprefix("shard_") for path in finished})
    assert finished and killed <= set(rerun_shards)
    for path, stat in finished.items():  # untouched: same file, same modification time
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), path
    assert_same_results(tmp_path / "results", local_results)
