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


def test_parse_time_benchmark_times_the_start_up_check_recorded_and_full(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/parse_time.py"), "--shards", "3", "6",
                           "--proteins", "60", "--length", "20", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "| recorded, warm (s) | recorded, cold (s) | full, cold (s) | full, warm (s) |" in done.stdout
    assert "\n| 6 | " in done.stdout and not list(tmp_path.iterdir())


def test_shard_checksum_benchmark_compares_fletcher32_and_sha256(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/shard_checksum.py"), "--gib", "0.002", "--dim", "64",
                           "--repeats", "1", "--workdir", str(tmp_path)], capture_output=True, text=True, check=True)
    for step in ("write, fletcher32=True", "read, fletcher32=False", "sha256 of the array", "embeddings.verify"):
        assert f"| {step}" in done.stdout
    assert "Fletcher-32 adds" in done.stdout


def test_scale_tail_runs_each_rule_after_the_tokens_and_reports_it(tmp_path):
    """`benchmarks/scale.py --tail` on 3 small shards: every rule after the tokens runs, nothing is left."""
    out = tmp_path / "tail.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks/scale.py"), "--sizes", "--synthetic", "0", "--tail", "30",
         "--tail-shard-size", "10", "--workdir", str(tmp_path), "--out", str(out),
         "--real-fasta", str(REPO / "tests/data/real/sequences/mmseqs2_examples_DB_first2000.fasta.gz")],
        capture_output=True, text=True, check=True)
    tail = json.loads(out.read_text())["tail"][0]
    assert tail["n_shards"] == 3 and tail["nothing_left"]
    assert {rule: info["jobs"] for rule, info in tail["rules"].items()} == {
        "llm_outputs": 3, "vocab": 1, "finetune_shard": 3, "codebook_summary": 1, "finetune_data": 1, "report": 1}
    assert all(info["peak_rss_mib"] > 0 for info in tail["rules"].values())
    assert tail["throughput_png_px"] == [1200, 480] and tail["disk_mb"]["sft"] > 0
