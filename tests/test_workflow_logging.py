"""Job logging: messages reach the rule's log file, and the job's peak memory is logged at exit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_job_logs_its_peak_rss_when_it_exits(tmp_path):
    log = tmp_path / "job.log"
    script = ("import numpy as np\n"
              "from structure_tokens.workflow_logging import configure_logging\n"
              f"configure_logging({str(log)!r}).info('working')\n"
              "block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
    text = log.read_text()
    assert "working" in text
    peak = float(re.search(r"peak RSS of this job: ([0-9.]+) MiB", text).group(1))
    assert 200 < peak < 2000


def test_the_peak_is_the_jobs_own_not_that_of_the_process_that_started_it(tmp_path):
    """A small job started by a large process (as Snakemake starts every job) logs its own peak."""
    log = tmp_path / "job.log"
    job = ("from structure_tokens.workflow_logging import configure_logging\n"
           f"configure_logging({str(log)!r}).info('working')\n")
    starter = ("import subprocess, sys\n"
               "import numpy as np\n"
               "block = np.ones(400 * 2**20 // 8)  # 400 MiB, touched, before the job starts\n"
               f"subprocess.run([sys.executable, '-c', {job!r}], check=True)\n")
    subprocess.run([sys.executable, "-c", starter], check=True, cwd=REPO)
    peak = float(re.search(r"peak RSS of this job: ([0-9.]+) MiB", log.read_text()).group(1))
    assert peak < 150


def test_a_failing_job_ends_its_log_with_the_error_and_traceback(tmp_path):
    log = tmp_path / "job.log"
    script = ("from structure_tokens.workflow_logging import configure_logging\n"
              f"configure_logging({str(log)!r}).info('working')\n"
              "def read_input():\n"
              "    raise ValueError('input.fasta: no records')\n"
              "read_input()\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    lines = log.read_text().splitlines()
    assert "peak RSS of this job" in lines[1]
    assert "CRITICAL structure_tokens: job failed with ValueError: input.fasta: no records" in lines[2]
    assert lines[3] == "Traceback (most recent call last):" and "in read_input" in "\n".join(lines[4:])
    assert lines[-1] == "ValueError: input.fasta: no records"
    assert result.stderr.count("Traceback") == 1  # once, through the log's stderr handler
