"""A job's thread pools capped at its rule's ``threads``, so that jobs sharing a node do not each
start one thread per core (OpenMP, BLAS and torch pools otherwise size themselves to the node)."""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(threads: int) -> dict[str, Any]:
    """Cap every thread pool of this process, and of pools and processes started later, at ``threads``.

    Returns what was set: ``{"threads": n, "pools": {library: threads}, "torch": n or None}``.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max(1, int(threads))
    for name in THREAD_VARIABLES:  # pools not started yet, and child processes
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)  # OpenMP and BLAS pools already loaded (numpy, scikit-learn)
    torch_threads = None
    if "torch" in sys.modules:  # only when the job uses torch: importing it costs a second
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        torch_threads = torch.get_num_threads()
    pools = {f"{info['internal_api']}:{os.path.basename(info['filepath'])}": info["num_threads"]
             for info in threadpool_info()}
    return {"threads": threads, "pools": pools, "torch": torch_threads}
