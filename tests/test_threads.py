"""Every job caps its OpenMP, BLAS and torch thread pools at its rule's threads."""

from __future__ import annotations

import json
import subprocess
import sys

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
    assert seen["pools"] and set(seen["pools"]) == {1} and seen["torch"] == 1 and seen["omp"] == "1"
    assert seen["faiss"] == 1
