"""The whole Snakemake DAG on the real demo proteins with a tiny random ESM-2 checkpoint."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.embeddings import EmbeddingShard, is_complete
from structure_tokens.formats.shards import read_shard
from structure_tokens.formats.tokens import is_complete as tokens_complete

from conftest import REPO, crash_embedder_on_batch, flip_bit_in_dataset, run_snakemake, write_test_config

K = 16

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_checkpoint) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    config = write_test_config(workdir, tiny_checkpoint)
    run_snakemake(workdir, "--configfile", str(config), "--cores", "2")
    return workdir / "results"


def test_dry_run_of_default_config_lists_every_rule(tmp_path):
    out = run_snakemake(tmp_path, "-n").stdout
    for rule in ("fetch_model", "prepare", "train_codebook", "vocab", "codebook_summary", "finetune_data", "report"):
        assert re.search(rf"^{rule}\s+1$", out, re.MULTILINE), rule


def test_lint_is_clean(tmp_path):
    run_snakemake(tmp_path, "--lint")  # exits non-zero when any lint is found


def test_every_input_record_is_accounted_for(run):
    manifest = pd.read_csv(run / "prepared/manifest.tsv", sep="\t", keep_default_na=False)
    assert len(manifest) == 100
    kept = manifest[manifest.status == "kept"]
    assert set(manifest.status) <= {"kept", "duplicate_sequence", "skipped", "not_selected"}
    assert (manifest.loc[manifest.status != "kept", "reason"] != "").all()
    tokens = pd.read_parquet(run / "tokens.parquet")
    assert sorted(tokens.id) == sorted(kept.protein_id)
    assert len(tokens) == len(kept) == 88  # 12 demo entries repeat an earlier sequence


def test_embeddings_match_residue_counts(run):
    summary = json.loads((run / "prepared/prepare_summary.json").read_text())
    assert len(summary["shards"]) == 3
    for shard in summary["shards"]:
        proteins = {p.id: p for p in read_shard(run / f"prepared/shards/{shard}.tsv")}
        path = run / f"embeddings/{shard}.h5"
        assert is_complete(path)
        with EmbeddingShard(path) as emb:
            assert sorted(emb.ids) == sorted(proteins)
            lengths = np.diff(emb.offsets)
            assert [proteins[i].length for i in emb.ids] == lengths.tolist()
            block = emb.protein(0)
            assert block.dtype == np.float16 and block.shape[1] == emb.dim
            assert np.isfinite(block).all() and block.astype(np.float32).std() > 0


def test_embed_jobs_log_progress_and_write_their_throughput(run):
    for shard in json.loads((run / "prepared/prepare_summary.json").read_text())["shards"]:
        log = (run / f"logs/embed/{shard}.log").read_text()
        lines = re.findall(rf"{shard}: (\d+)/(\d+) proteins, (\d+)/(\d+) residues \(\d+%\), \d+ residues/s, "
                           r"padding \d+\.\d%, batch budget \d+ tokens, ETA \S+", log)
        assert lines and lines[-1][0] == lines[-1][1] and lines[-1][2] == lines[-1][3]  # the last line: all done
        throughput = json.loads((run / f"job_benchmarks/embed/{shard}.json").read_text())
        assert throughput["residues"] == int(lines[-1][3]) and throughput["residues_per_s"] > 0
        assert 0 <= throughput["padding_fraction"] < 0.5 and throughput["device"] == "cpu"
        assert throughput["progress"][-1]["residues"] == throughput["residues"]


def test_every_job_caps_its_thread_pools_at_its_rule_threads(run):
    logs = sorted((run / "logs").rglob("*.log"))
    assert len(logs) >= 10
    for log in logs:
        match = re.search(r"thread pools capped at the rule's threads: (\{.*\})", log.read_text())
        assert match, log
        caps = ast.literal_eval(match.group(1))  # the dict as the job logged it
        rule = log.parent.name if log.parent.name != "logs" else log.stem
        expected = 4 if rule in ("embed", "embed_tokenize") else None
        assert all(n == caps["threads"] for n in caps["pools"].values()), (log, caps)
        assert caps["torch"] in (None, caps["threads"]), (log, caps)
        if expected:
            assert caps["threads"] <= expected  # --cores 2 scales the rule's 4 threads down


def test_codebook_and_tokens(run):
    codebook = Codebook.load(run / f"codebook/codebook_K{K}.npz")
    assert codebook.centroids.shape[0] == K
    with np.load(run / f"codebook/codebook_K{K}.npz", allow_pickle=False) as npz:
        assert str(npz["sha256"]) == codebook.sha256
    tokens = pd.read_parquet(run / "tokens.parquet")
    all_tokens = np.concatenate(tokens.structure_tokens.to_list())
    assert all_tokens.max() < K
    assert (tokens.structure_tokens.map(len) == tokens.sequence.str.len()).all()
    assert (tokens.n_unique_tokens == tokens.structure_tokens.map(lambda t: len(set(t)))).all()
    summary = json.loads((run / f"codebook_summary_K{K}.json").read_text())
    used = len(np.unique(all_tokens))
    assert summary["utilization"] == pytest.approx(used / K)
    assert summary["dead_codes"] == K - used
    assert 1 <= summary["perplexity"] <= K
    for key in ("inertia", "train_mse", "heldout_mse"):
        assert summary[key] > 0
    with h5py.File(run / "tokens/shard_00000.h5") as h5:
        assert h5["tokens"].dtype == np.uint16


def assert_same_outputs(results: Path, reference: Path, names) -> None:
    """Files, and folders file by file (names and bytes), are identical in two runs."""
    for name in names:
        got, want = results / name, reference / name
        if want.is_dir():
            assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in want.iterdir()), name
            assert_same_outputs(got, want, [p.name for p in want.iterdir()])
        else:
            assert got.read_bytes() == want.read_bytes(), got


LLM_OUTPUTS = ("tokens.parquet", "interleaved.jsonl", "token_counts", "vocab.json", f"codebook_summary_K{K}.json")


def test_llm_outputs(run):
    vocab = json.loads((run / "vocab.json").read_text())
    assert len(vocab["amino_acids"]) == 20 and len(vocab["structure_tokens"]) == K
    assert vocab["structure_tokens"][0] == "S000"
    shards = json.loads((run / "prepared/prepare_summary.json").read_text())["shards"]
    assert sorted(p.name for p in (run / "tokens.parquet").iterdir()) == [f"{s}.parquet" for s in shards]
    assert sorted(p.name for p in (run / "interleaved.jsonl").iterdir()) == [f"{s}.jsonl" for s in shards]
    tokens = pd.read_parquet(run / "tokens.parquet").set_index("id")
    assert tokens.shard.tolist() == sorted(tokens.shard)  # the parts read back in shard order
    lines = [line for shard in shards for line in (run / f"interleaved.jsonl/{shard}.jsonl").read_text().splitlines()]
    assert len(lines) == len(tokens) and [json.loads(line)["id"] for line in lines] == tokens.index.tolist()
    record = json.loads(lines[0])
    row = tokens.loc[record["id"]]
    assert record["tokens"][0::2] == list(row.sequence)
    assert record["tokens"][1::2] == [vocab["structure_tokens"][t] for t in row.structure_tokens]
    assert record["ids"] == [vocab["token_to_id"][t] for t in record["tokens"]]


def test_token_table_and_stream_load_as_one_dataset(run, monkeypatch, tmp_path):
    """The README's one-liners: the folders of shard parts read as one table, in shard order."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    table = pd.read_parquet(run / "tokens.parquet")
    loaded = datasets.load_dataset("parquet", data_dir=str(run / "tokens.parquet"), split="train",
                                   cache_dir=str(tmp_path))
    assert loaded["id"] == table.id.tolist()
    stream = datasets.load_dataset("json", data_dir=str(run / "interleaved.jsonl"), split="train",
                                   cache_dir=str(tmp_path))
    assert stream["id"] == table.id.tolist() and len(stream[0]["tokens"]) == 2 * len(table.sequence[0])


def test_report(run):
    for name in ("clustering_pca.png", "token_usage.png"):
        assert (run / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (run / "report/summary.md").read_text()
    assert "utilization" in text.lower()


def test_rerun_is_a_no_op(run):
    config = run.parent / "config.yaml"
    out = run_snakemake(run.parent, "--configfile", str(config), "--cores", "1", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_instruction_data(run):
    manifest = json.loads((run / "sft/manifest.json").read_text())
    tokens = pd.read_parquet(run / "tokens.parquet")
    rows = pd.concat([pd.read_parquet(p) for p in sorted((run / "sft/data").glob("*.parquet"))])
    assert len(rows) == (tokens.function != "").sum()  # every protein with function text, once
    assert set(rows.split) <= {"train", "validation", "test"} and rows.id.is_unique
    assert manifest["codebook_sha256"] == Codebook.load(run / f"codebook/codebook_K{K}.npz").sha256
    assert rows.iloc[0].prompt.startswith("Describe the function of this protein.\n<protein><aa:")


def test_corrupt_shard_file_is_rebuilt(run, tmp_path, tiny_checkpoint):
    """A truncated embeddings file left by an interrupted run is detected, removed and rebuilt."""
    config = str(write_test_config(tmp_path, tiny_checkpoint))
    shards = [f"results/embeddings/shard_0000{i}.h5" for i in range(3)]
    run_snakemake(tmp_path, "--configfile", config, "--cores", "2", "--until", "prepare")
    run_snakemake(tmp_path, "--configfile", config, "--cores", "2", *shards)  # a run stopped after embed
    embeddings = tmp_path / "results/embeddings/shard_00001.h5"
    embeddings.write_bytes(embeddings.read_bytes()[: embeddings.stat().st_size // 2])
    out = run_snakemake(tmp_path, "--configfile", config, "--cores", "2")
    assert "shard_00001.h5 is incomplete or corrupt" in out.stdout + out.stderr
    assert is_complete(embeddings)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results/tokens.parquet"),
                                  pd.read_parquet(run / "tokens.parquet"))


def truncate_to(size):
    """Damage: cut the file to ``size(its size)`` bytes (a copy gone wrong, a full disk)."""
    return lambda path: path.write_bytes(path.read_bytes()[: size(path.stat().st_size)])


def flip_a_bit_of(dataset):
    """Damage: one bit of ``dataset``'s data flipped, the file's mtime kept (bit rot, a hidden edit)."""
    return lambda path: flip_bit_in_dataset(path, dataset)


@pytest.mark.parametrize("damaged, damage, problem", [
    ("tokens/shard_00001.h5", truncate_to(lambda n: 3000), ""),
    ("embeddings/shard_00002.h5", truncate_to(lambda n: n // 2), ""),
    ("tokens/shard_00001.h5", flip_a_bit_of("tokens"), ": dataset tokens fails its checksum"),
    ("embeddings/shard_00002.h5", flip_a_bit_of("embeddings"), ": dataset embeddings fails its checksum"),
    ("embeddings/shard_00000.h5", truncate_to(lambda n: n // 2), ""),
], ids=["tokens-truncated", "embeddings-truncated", "tokens-bit-flip", "embeddings-bit-flip",
        "training-embeddings-truncated"])
def test_shard_damaged_after_a_finished_run_is_rebuilt(run, tmp_path, damaged, damage, problem):
    """A finished run, then one shard file damaged: the rerun names it, rebuilds it and what was made
    from it (for a training shard: the codebook, also as a user whom file modes bind), the outputs
    equal the clean run's, and the next rerun has nothing to do."""
    workdir = tmp_path / "run"
    shutil.copytree(run.parent, workdir, symlinks=True)  # outputs, config and Snakemake's metadata
    path = workdir / "results" / damaged
    damage(path)
    config = str(workdir / "config.yaml")
    out = run_snakemake(workdir, "--configfile", config, "--cores", "2")
    assert f"{Path(damaged).name} is incomplete or corrupt{problem}" in out.stdout + out.stderr
    assert (is_complete if damaged.startswith("embeddings") else tokens_complete)(path)
    assert_same_outputs(workdir / "results", run, LLM_OUTPUTS)
    again = run_snakemake(workdir, "--configfile", config, "--cores", "1", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


KILLED_WRITER = """
import os, signal, sys
import structure_tokens.llm.outputs as outputs

real = outputs.interleaved_lines


def dying(*args):  # the node dies while the job writes its shard's stream
    for number, line in enumerate(real(*args)):
        if number == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        yield line


outputs.interleaved_lines = dying
results, shard = sys.argv[1], sys.argv[2]
outputs.write_shard_outputs(f"{results}/prepared/shards/{shard}.tsv", f"{results}/tokens/{shard}.h5",
                            f"{results}/codebook/codebook_K16.npz",
                            out_parquet=f"{results}/tokens.parquet/{shard}.parquet",
                            out_jsonl=f"{results}/interleaved.jsonl/{shard}.jsonl",
                            out_counts=f"{results}/token_counts/{shard}.json")
"""


def test_llm_outputs_job_killed_while_writing_leaves_nothing_behind(run, tmp_path):
    """A shard's `llm_outputs` job killed (SIGKILL) in the middle of its writes: none of its outputs
    appears, the rerun removes the hidden temporary files and rebuilds the parts as a clean run,
    and the next rerun has nothing to do."""
    workdir = tmp_path / "run"
    shutil.copytree(run.parent, workdir, symlinks=True)
    results, shard = workdir / "results", "shard_00001"
    for name in (f"tokens.parquet/{shard}.parquet", f"interleaved.jsonl/{shard}.jsonl", f"token_counts/{shard}.json"):
        (results / name).unlink()  # the state of a job that never finished
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(results), shard], cwd=REPO)
    assert killed.returncode == -9
    leftovers = sorted(path.name for path in results.rglob(".*.tmp"))
    assert [name.split(".tmp")[0][:-9] for name in leftovers] == [
        f".{shard}.json", f".{shard}.jsonl", f".{shard}.parquet"]  # one half-written temporary file per output
    assert not (results / f"tokens.parquet/{shard}.parquet").exists()
    config = str(workdir / "config.yaml")
    run_snakemake(workdir, "--configfile", config, "--cores", "2")
    assert not list(results.rglob(".*.tmp"))
    assert_same_outputs(results, run, LLM_OUTPUTS)
    again = run_snakemake(workdir, "--configfile", config, "--cores", "1", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bit_rot_the_start_up_check_cannot_see_fails_the_job_naming_the_shard_then_is_rebuilt(run, tmp_path):
    """A bit of a finished tokens shard flipped without any change to the file's metadata (emulated
    by recording the damaged file as verified): `--forcerun llm_outputs` fails with an error naming
    the shard and the dataset, and the next run rebuilds the shard and ends like a clean run."""
    from structure_tokens.formats.checksums import record_verified

    workdir = tmp_path / "run"
    shutil.copytree(run.parent, workdir, symlinks=True)
    path = workdir / "results/tokens/shard_00001.h5"
    flip_bit_in_dataset(path, "tokens")
    record_verified(path)
    config = str(workdir / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", config, "--cores", "2", "--forcerun", "llm_outputs"]
    failed = subprocess.run(cmd, capture_output=True, text=True)
    assert failed.returncode != 0 and "will be rebuilt" not in failed.stdout + failed.stderr  # unseen at start-up
    last = (workdir / "results/logs/llm_outputs/shard_00001.log").read_text().splitlines()[-1]
    assert "DamagedShard: results/tokens/shard_00001.h5 is incomplete or corrupt: dataset tokens fails its checksum" \
        in last
    out = run_snakemake(workdir, "--configfile", config, "--cores", "2")
    assert "shard_00001.h5 is incomplete or corrupt: dataset tokens fails its checksum" in out.stdout + out.stderr
    assert_same_outputs(workdir / "results", run,
                        ("tokens.parquet", "interleaved.jsonl", "vocab.json", "codebook_summary_K16.json"))
    again = run_snakemake(workdir, "--configfile", config, "--cores", "1", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_one_pass_mode_gives_the_same_tokens(run, tmp_path, tiny_checkpoint):
    """`keep_embeddings: false`: embeddings are temporary, tokens come from `embed_tokenize`."""
    config = write_test_config(tmp_path, tiny_checkpoint, keep_embeddings=False)
    run_snakemake(tmp_path, "--configfile", str(config), "--cores", "2")
    results = tmp_path / "results"
    assert len(list((results / "logs/embed_tokenize").glob("shard_*.log"))) == 3
    assert len(list((results / "logs/embed").glob("shard_*.log"))) == 2  # codebook.train_shards
    assert not (results / "logs/tokenize").exists()
    assert (results / "report/clustering_pca.png").stat().st_size > 0
    assert not list((results / "embeddings").glob("*.h5"))  # temp(): removed once consumed
    pd.testing.assert_frame_equal(pd.read_parquet(results / "tokens.parquet"), pd.read_parquet(run / "tokens.parquet"))


def test_crashed_embed_job_then_edited_input_ends_like_a_clean_run(tmp_path, tiny_checkpoint, monkeypatch):
    """An embed job dies after some batches; a protein it finished is edited in the input; the rerun
    discards what no longer matches and its outputs equal a clean run's on the edited input."""
    from structure_tokens.embed.embedder import embed_shard
    from structure_tokens.embed.options import EmbedOptions
    from structure_tokens.formats.resumable import partial_dir
    from structure_tokens.inputs.readers import read_uniprot

    records = [r for r in read_uniprot(REPO / "structure_tokens/data/demo_swissprot.dat.gz")]
    fasta = tmp_path / "proteins.fasta"
    fasta.write_text("".join(f">{r.input_id}\n{r.sequence}\n" for r in records))
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    configs = {}
    for workdir in (crashed, clean):
        workdir.mkdir()
        configs[workdir] = str(write_test_config(workdir, tiny_checkpoint, input={
            "source": "fasta", "path": str(fasta), "shard_size": 40}))
    run_snakemake(crashed, "--configfile", configs[crashed], "--cores", "2", "--until", "prepare")
    shard_tsv, out = crashed / "results/prepared/shards/shard_00001.tsv", crashed / "results/embeddings/shard_00001.h5"
    undo = crash_embedder_on_batch(monkeypatch, 4)
    options = EmbedOptions.from_config(yaml.safe_load(Path(configs[crashed]).read_text())["model"])
    with pytest.raises(RuntimeError, match="node died"):
        embed_shard(shard_tsv, tiny_checkpoint, out, options)
    undo()
    with np.load(sorted(partial_dir(out).glob("batch_*.npz"))[0]) as batch:
        edited_id = str(batch["ids"][0])  # finished before the crash
    sequence = next(r.sequence for r in records if r.input_id == edited_id)
    mutated = sequence[:10] + ("W" if sequence[10] != "W" else "Y") + sequence[11:]
    fasta.write_text(fasta.read_text().replace(f">{edited_id}\n{sequence}\n", f">{edited_id}\n{mutated}\n"))

    run_snakemake(crashed, "--configfile", configs[crashed], "--cores", "2")
    log = (crashed / "results/logs/embed/shard_00001.log").read_text()
    assert re.search(r"discarding \d+ finished proteins whose sequence or forward batch changed.*" + edited_id, log)
    run_snakemake(clean, "--configfile", configs[clean], "--cores", "2")
    assert_same_outputs(crashed / "results", clean / "results", (*LLM_OUTPUTS, "codebook/codebook_K16.npz"))
    # FASTA records have no function text: the empty instruction set is announced, not silent
    empty = "the instruction data is empty: none of the 88 proteins has function text"
    assert re.search(f"WARNING .*{empty}", (clean / "results/logs/finetune_data.log").read_text())
    assert f"WARNING: {empty}" in (clean / "results/report/summary.md").read_text()
    assert re.search(f"WARNING .*{empty}", (clean / "results/logs/report.log").read_text())
    with h5py.File(out) as resumed, h5py.File(clean / "results/embeddings/shard_00001.h5") as reference:
        for name in ("embeddings", "offsets", "ids", "sequence_hash"):
            assert np.array_equal(resumed[name][()], reference[name][()]), name
    again = run_snakemake(crashed, "--configfile", configs[crashed], "--cores", "1", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_failed_job_log_ends_with_its_error(tmp_path, tiny_checkpoint):
    """An empty FASTA makes `prepare` fail: its log says why, with the traceback, as its last lines."""
    fasta = tmp_path / "empty.fasta"
    fasta.write_text("")
    config = write_test_config(tmp_path, tiny_checkpoint, input={"source": "fasta", "path": str(fasta)})
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "--cores", "1", "--until", "prepare"]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode != 0
    lines = (tmp_path / "results/logs/prepare.log").read_text().splitlines()
    failure = next(i for i, line in enumerate(lines) if "job failed with" in line)
    assert str(fasta) in lines[failure] and lines[failure + 1] == "Traceback (most recent call last):"
    assert lines[-1].startswith("ValueError: ") and str(fasta) in lines[-1]


def test_used_as_a_module_of_another_workflow(run, tmp_path, tiny_checkpoint):
    """A host workflow imports this one with `module` (as snakedeploy sets it up) and its own config."""
    write_test_config(tmp_path, tiny_checkpoint)
    (tmp_path / "Snakefile").write_text(f'''configfile: "config.yaml"


module structure_tokens:
    snakefile:
        "{REPO / "Snakefile"}"
    config:
        config


use rule * from structure_tokens as structure_tokens_*
''')
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(tmp_path), "--cores", "2"]
    dry = subprocess.run(cmd + ["-n"], capture_output=True, text=True, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-5000:]
    assert "structure_tokens_prepare" in dry.stdout
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    assert_same_outputs(tmp_path / "results", run, LLM_OUTPUTS)


def test_offline_model_download_prints_the_advice_without_a_traceback(tmp_path, tiny_checkpoint):
    """No network (this machine has none to fbaipublicfiles): fetch_model fails with what to do, nothing else."""
    config = write_test_config(tmp_path, tiny_checkpoint)
    settings = yaml.safe_load(config.read_text())
    settings["model"] = {"name": "esm2_t6_8M_UR50D", "checkpoint": None, "cache_dir": str(tmp_path / "models")}
    config.write_text(yaml.safe_dump(settings))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "--cores", "1", "--until", "fetch_model"]
    env = dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")  # surely offline
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/fetch_model.log").read_text()
    assert "ERROR structure_tokens: could not download ESM-2 weights for esm2_t6_8M_UR50D" in log.splitlines()[-2]
    assert "Supply them by copying esm2_t6_8M_UR50D.pt" in log and "Traceback" not in log
    assert "Traceback" not in result.stdout + result.stderr
