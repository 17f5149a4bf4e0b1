"""A job's thread pools capped at its rule's ``threads``, so that jobs sharing a node do not each
start one thread per core (OpenMP, BLAS and torch pools otherwise size themselves to the node), and
matrix products whose float32 sums do not depend on how many threads compute them."""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# MKL's strict conditional numerical reproducibility (CNR): its float32 matrix products give the
# same bits with any number of threads. Without it, MKL splits the long sums of small products (e.g.
# ESM-2's feed-forward layer on a short last batch) between threads, and the bytes of an embedding
# shard changed with the job's threads (docs/DESIGN.md, "Identical runs, identical bytes").
MKL_REPRODUCIBILITY = ("MKL_CBWR", "AUTO,STRICT")


def reproducible_blas() -> str:
    """Ask MKL for thread-count independent results (:data:`MKL_REPRODUCIBILITY`); return the setting in force.

    MKL reads it once, at the process's first matrix product: this must run before any (importing
    ``structure_tokens.embed`` and :func:`limit_threads` call it). A value the user set is kept.
    """
    name, value = MKL_REPRODUCIBILITY
    return os.environ.setdefault(name, value)


def limit_threads(threads: int) -> dict[str, Any]:
    """Cap every thread pool of this process, and of pools and processes started later, at ``threads``.

    Returns what was set: ``{"threads": n, "pools": {library: threads}, "torch": n or None,
    "mkl_cbwr": MKL's reproducibility setting}`` (see :func:`reproducible_blas`).
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max(1, int(threads))
    mkl_cbwr = reproducible_blas()
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
    return {"threads": threads, "pools": pools, "torch": torch_threads, "mkl_cbwr": mkl_cbwr}
