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
