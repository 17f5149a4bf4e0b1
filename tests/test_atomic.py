"""Atomic outputs: nothing half-written under a final name, and no temporary file left behind."""

from __future__ import annotations

import os
import signal

import pytest

from structure_tokens.formats.atomic import (atomic_directory, atomic_output, atomic_outputs, json_text,
                                             stale_temporaries, write_json)


def killed_while_writing(path, folder=False) -> None:
    """A child process starts writing ``path`` and is killed (SIGKILL) before the rename, as a job can be."""
    pid = os.fork()
    if pid == 0:  # the child: write half, then die without any cleanup
        writer = atomic_directory if folder else atomic_output
        with writer(path) as tmp:
            (tmp / "part.txt" if folder else tmp).write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_killed_write_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    out = tmp_path / "tokens.parquet"
    neighbours = [tmp_path / ".tokens.parquet.bak.tmp", tmp_path / ".other.abcdefgh.tmp", tmp_path / "x.tmp"]
    for path in neighbours:
        path.write_text("not ours")
    killed_while_writing(out)
    first = stale_temporaries(out)
    killed_while_writing(out)  # a retry killed too: the first leftover is gone, the retry's is there
    second = stale_temporaries(out)
    assert len(first) == len(second) == 1 and first != second and not out.exists()
    with atomic_output(out) as tmp:
        assert stale_temporaries(out) == [tmp]  # the leftovers are gone before the new write starts
        tmp.write_text("complete")
    assert out.read_text() == "complete" and not stale_temporaries(out)
    assert all(path.read_text() == "not ours" for path in neighbours)  # other files are never touched


def test_outputs_of_one_job_appear_together_or_not_at_all(tmp_path):
    paths = [tmp_path / "a/part.parquet", tmp_path / "b/part.jsonl", tmp_path / "c/part.json"]
    with pytest.raises(RuntimeError, match="failed"):
        with atomic_outputs(*paths) as tmps:
            for tmp in tmps:
                tmp.write_text("x")
            raise RuntimeError("failed while writing")
    assert not [p for folder in "abc" for p in (tmp_path / folder).iterdir()]
    with atomic_outputs(*paths) as tmps:
        for tmp, path in zip(tmps, paths):
            tmp.write_text(path.name)
    assert [path.read_text() for path in paths] == ["part.parquet", "part.jsonl", "part.json"]
    assert oct(paths[0].stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_folder_appears_whole_and_replaces_an_older_one(tmp_path):
    out = tmp_path / "sft"
    killed_while_writing(out, folder=True)
    assert len(stale_temporaries(out)) == 1 and not out.exists()
    for version in ("first", "second"):
        with atomic_directory(out) as tmp:
            (tmp / "data").mkdir()
            (tmp / "data" / f"{version}.txt").write_text(version)
        assert [p.name for p in (out / "data").iterdir()] == [f"{version}.txt"]
    with pytest.raises(ValueError):
        with atomic_directory(out) as tmp:
            (tmp / "third.txt").write_text("third")
            raise ValueError("failed")
    assert [p.name for p in (out / "data").iterdir()] == ["second.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft"]  # no temporary folder left
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())


def test_json_files_end_with_a_newline_and_keep_their_indent(tmp_path):
    content = {"a": [1, 2], "b": None}
    assert json_text(content) == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": null\n}\n'
    assert json_text(content, indent=1) == '{\n "a": [\n  1,\n  2\n ],\n "b": null\n}\n'
    assert json_text(content, indent=None) == '{"a": [1, 2], "b": null}\n'
    write_json(tmp_path / "one_line.json", content, indent=None)
    assert (tmp_path / "one_line.json").read_text() == json_text(content, indent=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_line.json"]
