"""The GPU benchmark command works end to end (here on the CPU, smallest model, a few proteins), so
a session that is lent a GPU can take the numbers in one run."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_embed_throughput_runs_every_method_and_reports_its_numbers(tmp_path):
    out = tmp_path / "throughput.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/embed_throughput.py"), "--device", "cpu", "--arch", "t6_8M",
         "--n", "6", "--original-n", "3", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, check=True)
    result = json.loads(out.read_text())["results"][0]
    assert set(result["methods"]) == {"a_seed_loop", "b_extract_fp32", "c_project"}
    for method in result["methods"].values():
        assert method["residues_per_s"] > 0 and len(method["seconds"]) == 1
    assert result["original_n"] == 3 and result["n_proteins"] == 6
    assert 0 <= result["methods"]["c_project"]["padding"] < 1
    assert any("scaled_dot_product" in name for name in result["sdpa"]["padded"])
    assert set(result["shard_job_seconds"]) == {"embed", "embed_tokenize"}
    assert "| t6_8M | c_project |" in done.stdout and "c/a" in done.stdout
