"""One run per output folder: a second run started at the same instant is refused at once, by name."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from structure_tokens.workflow_lock import claim_output_folder, only_inspects

from conftest import REPO, write_test_config


def test_a_claim_by_another_process_is_refused_naming_the_folder_and_the_holder(tmp_path):
    held = claim_output_folder(tmp_path / "results")
    assert claim_output_folder(tmp_path / "results") is held  # this process parsing the workflow again
    claim = ("from structure_tokens.workflow_lock import claim_output_folder; "
             f"claim_output_folder({str(tmp_path / 'results')!r})")
    other = subprocess.run([sys.executable, "-c", claim], capture_output=True, text=True, cwd=REPO)
    assert re.search(rf"OutputFolderBusy: output folder {tmp_path}/results is in use by another run of this "
                     rf"workflow \(pid {os.getpid()} on host {re.escape(socket.gethostname())}, since ", other.stderr)
    held.close()  # the process ended: the kernel releases the lock, nothing stale is left
    subprocess.run([sys.executable, "-c", claim], check=True, cwd=REPO)


@pytest.mark.parametrize("argv, inspects", [(["-n"], True), (["-np", "--cores", "2"], True), (["--lint"], True),
                                            (["--unlock"], True), (["--summary"], True),
                                            (["--cores", "2"], False), (["--profile", "profiles/slurm"], False)])
def test_commands_that_only_inspect_are_told_apart(argv, inspects):
    assert only_inspects(argv) == inspects


@pytest.mark.workflow
def test_two_runs_released_at_the_same_instant_never_share_the_folder(tmp_path, tiny_checkpoint):
    """Pairs of `snakemake` runs on one folder, both released at the same wall-clock instant: in every
    pair one runs and the other refuses at once with the folder and the first run's pid and host."""
    release = ("import os, sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
               "os.execv(sys.executable, [sys.executable, '-m', 'snakemake', *sys.argv[2:]])")
    for pair in range(5):
        workdir = tmp_path / f"pair{pair}"
        workdir.mkdir()
        config = write_test_config(workdir, tiny_checkpoint)
        at = str(time.time() + 4)
        cmd = [sys.executable, "-c", release, at, "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(config), "--cores", "1", "--until", "prepare"]
        runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in "ab"]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
        codes = sorted(run.returncode for run in runs)
        assert codes[0] == 0 and codes[1] != 0, outputs
        refused = outputs[[run.returncode for run in runs].index(codes[1])]
        assert re.search(rf"output folder {workdir}/results is in use by another run of this workflow \(pid "
                         r"\d+ on host \S+, since", refused), refused
        assert (workdir / "results/prepared/prepare_summary.json").is_file()
