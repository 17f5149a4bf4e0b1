"""The user's model weights are never a rule's output: no rerun trigger can delete or re-make them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from structure_tokens.embed.checkpoint import hub_checkpoint_path, regression_path

from conftest import REPO, run_snakemake, write_test_config

pytestmark = pytest.mark.workflow
LAST_YEAR = 1_733_000_000  # 2024-11-30: weights copied with `cp -p`, `rsync -a` or tar keep such dates


def checkout_with_edited_fetch_script(tmp_path: Path) -> Path:
    """A copy of this checkout whose `scripts/fetch_model.py` changed since (a `git pull`)."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for part in ("Snakefile", "rules", "scripts", "envs", "config", "docs", "structure_tokens"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / part)
    script = copy / "scripts/fetch_model.py"
    script.write_text(script.read_text() + "# changed upstream\n")
    return copy


def old_copy(source: Path, target: Path) -> dict[Path, tuple[bytes, int]]:
    """`cp -p` of a checkpoint and its regression file, dated last year; their bytes and mtimes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for src, dst in ((source, target), (regression_path(source), regression_path(target))):
        shutil.copy2(src, dst)
        os.utime(dst, (LAST_YEAR, LAST_YEAR))
        state[dst] = (dst.read_bytes(), dst.stat().st_mtime_ns)
    return state


def assert_untouched(state: dict[Path, tuple[bytes, int]]) -> None:
    for path, (data, mtime) in state.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, path


def test_old_dated_user_checkpoint_is_no_rule_output(tmp_path, tiny_checkpoint):
    """`model.checkpoint` older than the fetch script (which also changed): nothing would download or delete it."""
    checkout = checkout_with_edited_fetch_script(tmp_path)
    weights = old_copy(tiny_checkpoint, tmp_path / "user/weights/esm2_t2_32_tiny_random.pt")
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = write_test_config(workdir, next(iter(weights)))
    args = ("--configfile", str(config), "--cores", "2")
    everything = run_snakemake(workdir, *args, "-n", "--forceall", snakefile=checkout / "Snakefile").stdout
    assert "prepare" in everything and "fetch_model" not in everything
    run_snakemake(workdir, *args, "--until", "prepare", snakefile=checkout / "Snakefile")
    assert_untouched(weights)


def test_cached_hub_weights_survive_a_changed_fetch_script(tmp_path, tiny_checkpoint):
    """Weights in the hub cache, dated last year, then `scripts/fetch_model.py` changes: the run uses them
    as they are (the architecture read from the file, whatever its name), and a rerun does nothing."""
    checkout = checkout_with_edited_fetch_script(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    cache = tmp_path / "models"
    weights = old_copy(tiny_checkpoint, hub_checkpoint_path("esm2_t6_8M_UR50D", cache))
    config = write_test_config(workdir, tiny_checkpoint)
    config.write_text(config.read_text().replace(f"checkpoint: {tiny_checkpoint}",
                                                 f"checkpoint: null\n  name: esm2_t6_8M_UR50D\n  cache_dir: {cache}"))
    args = ("--configfile", str(config), "--cores", "2")
    out = run_snakemake(workdir, *args, snakefile=checkout / "Snakefile")
    assert "fetch_model" not in out.stdout + out.stderr
    assert list((workdir / "results/tokens.parquet").glob("shard_*.parquet"))
    again = run_snakemake(workdir, *args, "-n", snakefile=checkout / "Snakefile")
    assert "Nothing to be done" in again.stdout + again.stderr
    forced = run_snakemake(workdir, *args, "-n", "--forceall", snakefile=checkout / "Snakefile")
    assert "fetch_model" not in forced.stdout
    assert_untouched(weights)
