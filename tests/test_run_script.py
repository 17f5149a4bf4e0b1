"""tests/run.sh keeps the torch a user installed: it only installs torch into a venv without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def fake_venv(tmp_path: Path, torch_version: str | None) -> tuple[Path, Path]:
    """A venv whose `python -m pip` / `python -m pytest` only log their arguments, with `torch_version` installed."""
    site = tmp_path / "site"
    site.mkdir()
    if torch_version:
        info = site / f"torch-{torch_version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {torch_version}\n")
    log = tmp_path / "calls.log"
    python = tmp_path / "venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text(f"""#!/usr/bin/env bash
if [ "$1" = "-m" ] && {{ [ "$2" = "pip" ] || [ "$2" = "pytest" ]; }}; then echo "$*" >> {log}; exit 0; fi
PYTHONPATH={site} exec {sys.executable} -S "$@"  # -S: only the fake site, not this venv
""")
    python.chmod(0o755)
    return python.parent.parent, log


@pytest.mark.parametrize("torch_version, installs_torch", [("2.99.0+cu130", False), ("2.13.0+cpu", False),
                                                           ("2.5.1", True), (None, True)])
def test_run_script_installs_torch_only_when_missing_or_too_old(tmp_path, torch_version, installs_torch):
    venv, log = fake_venv(tmp_path, torch_version)
    env = dict(os.environ, STRUCTURE_TOKENS_VENV=str(venv))
    result = subprocess.run(["bash", str(REPO / "tests/run.sh"), "--collect-only", "-q"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert ("-m pip install --quiet torch==2.13.0" in calls) == installs_torch, calls
    assert (f"keeping torch {torch_version} in" in result.stdout) == (not installs_torch)
    assert calls[-2:] == ["-m pip install --quiet -e .[test,workflow]", "-m pytest -ra --collect-only -q"]


def test_tests_run_without_roots_file_permission_override(tmp_path):
    """The suite runs as a cluster user would: a read-only file cannot be written, also when run as root
    (tests/run.sh drops root's DAC-override capabilities), so rerun and recovery paths meet file modes."""
    read_only = tmp_path / "read_only.txt"
    read_only.write_text("protected")
    read_only.chmod(0o444)
    with pytest.raises(PermissionError):
        read_only.open("a")
    assert not os.access(read_only, os.W_OK)
