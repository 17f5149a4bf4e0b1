"""Every job caps its OpenMP, BLAS and torch thread pools at its rule's threads, and asks MKL for
results that do not depend on them (tests/test_embed_determinism.py checks the bytes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from structure_tokens.threads import reproducible_blas

from conftest import REPO


def test_limit_threads_caps_loaded_pools_torch_and_later_ones():
    code = ("import json, os, numpy, torch, sklearn.cluster\n"
            "from threadpoolctl import threadpool_info\n"
            "from structure_tokens.threads import limit_threads\n"
            "set_ = limit_threads(1)\n"
            "import faiss  # imported after the cap, as the codebook's faiss backend does\n"
            "print(json.dumps({'set': set_, 'pools': [i['num_threads'] for i in threadpool_info()],\n"
            "                  'torch': torch.get_num_threads(), 'omp': os.environ['OMP_NUM_THREADS'],\n"
            "                  'faiss': faiss.omp_get_max_threads()}))\n")
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}  # as if the node had more cores than the job
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                            check=True)
    seen = json.loads(result.stdout)
    assert seen["set"]["threads"] == 1 and seen["set"]["torch"] == 1
    assert seen["set"]["mkl_cbwr"] == "AUTO,STRICT"  # MKL's sums independent of the thread count
    assert seen["pools"] and set(seen["pools"]) == {1} and seen["torch"] == 1 and seen["omp"] == "1"
    assert seen["faiss"] == 1


def test_a_reproducibility_setting_of_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AVX2,STRICT")  # e.g. the same code branch on every node of a cluster
    assert reproducible_blas() == "AVX2,STRICT"
    monkeypatch.delenv("MKL_CBWR")
    assert reproducible_blas() == "AUTO,STRICT" and os.environ["MKL_CBWR"] == "AUTO,STRICT"
