"""No test is hidden: the CUDA tests are collected everywhere and, without CUDA, skipped with their reason."""

from __future__ import annotations

import subprocess
import sys

import torch

from conftest import REPO


def test_cuda_tests_are_collected_and_listed_as_skipped_without_cuda():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                             "tests/test_cuda.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:]
    if torch.cuda.is_available():
        assert " passed" in result.stdout and "skipped" not in result.stdout
    else:
        assert "5 skipped" in result.stdout
        assert "SKIPPED [2] tests/test_cuda.py" in result.stdout and "cannot use CUDA here" in result.stdout
