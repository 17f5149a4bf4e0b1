"""Growing or editing the input of a finished run: only the shards whose proteins changed are embedded again.

`--max-checksum-file-size 1000` is below the size of a shard table, so Snakemake decides by
modification times alone, as it does at scale (shard tables over 1 MB are not checksummed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake, write_test_config
from structure_tokens.formats.shards import read_shard
from structure_tokens.inputs.readers import read_uniprot

pytestmark = pytest.mark.workflow

NO_CHECKSUMS = ("--max-checksum-file-size", "1000")
TARGET = "all_tokens"  # every shard's token-table part (and the vocabulary), nothing else
JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)*)", re.MULTILINE)


def jobs_run(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, shard or '') of every job a Snakemake run started, from its log."""
    jobs = []
    for rule, block in JOB.findall(result.stdout + result.stderr):
        shard = re.search(r"wildcards: shard=(\d+)", block)
        jobs.append((rule, shard.group(1) if shard else ""))
    return sorted(jobs)


def setup_run(workdir: Path, checkpoint: Path, fasta_text: str, num_proteins: int) -> str:
    """A workflow folder reading its own ``proteins.fasta``: 20 proteins per shard, 2 training shards."""
    workdir.mkdir(exist_ok=True)
    (workdir / "proteins.fasta").write_text(fasta_text)
    config = write_test_config(workdir, checkpoint, input={
        "source": "fasta", "path": "proteins.fasta", "shard_size": 20, "num_proteins": num_proteins})
    return str(config)


def set_num_proteins(config: str, num_proteins: int) -> None:
    settings = yaml.safe_load(Path(config).read_text())
    settings["input"]["num_proteins"] = num_proteins
    Path(config).write_text(yaml.safe_dump(settings))


def token_table(workdir: Path) -> dict[str, bytes]:
    """The bytes of every part of ``tokens.parquet/`` and ``interleaved.jsonl/``."""
    parts = sorted((workdir / "results/tokens.parquet").glob("*")) + sorted(
        (workdir / "results/interleaved.jsonl").glob("*"))
    return {part.name: part.read_bytes() for part in parts}


def assert_nothing_to_do(workdir: Path, config: str) -> None:
    again = run_snakemake(workdir, "--configfile", config, "--cores", "1", "-n", *NO_CHECKSUMS, TARGET)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.fixture(scope="module")
def demo_fasta() -> str:
    records = read_uniprot(REPO / "structure_tokens/data/demo_swissprot.dat.gz")
    return "".join(f">{r.input_id}\n{r.sequence}\n" for r in records)


@pytest.fixture(scope="module")
def clean_60(tmp_path_factory, tiny_checkpoint, demo_fasta) -> tuple[Path, str]:
    """A clean run on the first 60 proteins: 3 shards, shards 0 and 1 train the codebook."""
    workdir = tmp_path_factory.mktemp("clean_60")
    config = setup_run(workdir, tiny_checkpoint, demo_fasta, 60)
    run_snakemake(workdir, "--configfile", config, "--cores", "2", TARGET)
    return workdir, config


def test_scaling_up_embeds_only_the_new_shard(tmp_path, tiny_checkpoint, demo_fasta, clean_60):
    config = setup_run(tmp_path, tiny_checkpoint, demo_fasta, 40)
    first = run_snakemake(tmp_path, "--configfile", config, "--cores", "2", TARGET)
    assert [job for job in jobs_run(first) if job[0] == "embed"] == [("embed", "00000"), ("embed", "00001")]
    shards = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "results/prepared/shards").glob("*.tsv")}

    set_num_proteins(config, 60)
    scaled = run_snakemake(tmp_path, "--configfile", config, "--cores", "2", *NO_CHECKSUMS, TARGET)
    # vocab: Snakemake schedules what follows the codebook before the checkpoint has rerun and keeps
    # it; the job is tiny and its file comes out byte-identical
    assert jobs_run(scaled) == [("all_tokens", ""), ("embed", "00002"), ("llm_outputs", "00002"), ("prepare", ""),
                                ("tokenize", "00002"), ("vocab", "")]
    assert (tmp_path / "results/vocab.json").read_bytes() == (clean_60[0] / "results/vocab.json").read_bytes()
    for name, mtime in shards.items():
        assert (tmp_path / "results/prepared/shards" / name).stat().st_mtime_ns == mtime, name
    assert token_table(tmp_path) == token_table(clean_60[0])
    assert_nothing_to_do(tmp_path, config)


def test_an_edited_protein_re_embeds_only_its_shard(tmp_path, tiny_checkpoint, demo_fasta, clean_60):
    """A protein of shard 1, a training shard, is edited: only shard 1 is embedded again; the
    codebook is retrained on it, so every shard is tokenized again, as in a clean run."""
    workdir = tmp_path / "edited"
    shutil.copytree(clean_60[0], workdir, symlinks=True)  # outputs, config and Snakemake's metadata
    config = str(workdir / "config.yaml")
    # without aliases: were its sequence repeated later in the input, the next copy would become a
    # protein of its own and shift the later shards
    protein = next(p for p in read_shard(workdir / "results/prepared/shards/shard_00001.tsv")[3:] if not p.aliases)
    mutated = protein.sequence[:10] + ("W" if protein.sequence[10] != "W" else "Y") + protein.sequence[11:]
    edited_fasta = demo_fasta.replace(f">{protein.id}\n{protein.sequence}\n", f">{protein.id}\n{mutated}\n")
    assert edited_fasta != demo_fasta
    (workdir / "proteins.fasta").write_text(edited_fasta)

    rerun = run_snakemake(workdir, "--configfile", config, "--cores", "2", *NO_CHECKSUMS, TARGET)
    assert jobs_run(rerun) == [("all_tokens", ""), ("embed", "00001"), ("llm_outputs", "00000"),
                               ("llm_outputs", "00001"), ("llm_outputs", "00002"), ("prepare", ""),
                               ("tokenize", "00000"), ("tokenize", "00001"), ("tokenize", "00002"),
                               ("train_codebook", ""), ("vocab", "")]
    clean = tmp_path / "clean"
    clean_config = setup_run(clean, tiny_checkpoint, edited_fasta, 60)
    run_snakemake(clean, "--configfile", clean_config, "--cores", "2", TARGET)
    assert token_table(workdir) == token_table(clean)
    for name in ("results/codebook/codebook_K16.npz", "results/prepared/shards/shard_00001.tsv"):
        assert (workdir / name).read_bytes() == (clean / name).read_bytes(), name
    assert_nothing_to_do(workdir, config)
