"""The resources by which a GPU rule asks SLURM for its GPU, from the site's environment variables.

The GPU rules carry these resources themselves (``resources: **GPU_JOB`` in rules/*.smk), so the
routing holds whatever the rules are called: also when a host workflow imports them with a prefix
(``use rule * from structure_tokens as structure_tokens_*``), where a profile's ``set-resources``
entries, keyed by rule name, would no longer match. Light to import (the main Snakemake process).
"""

from __future__ import annotations

import os
from typing import Mapping

GPU_PARTITION = "STRUCTURE_TOKENS_SLURM_GPU_PARTITION"
GPU_MODEL = "STRUCTURE_TOKENS_SLURM_GPU_MODEL"
GPU_REQUEST = "STRUCTURE_TOKENS_SLURM_GPU_REQUEST"
REQUEST_STYLES = ("gpus", "gres")


def gpu_job_resources(environ: Mapping[str, str] = os.environ) -> dict[str, int | str]:
    """One GPU on the GPU partition (default ``gpu``), as ``--gpus=[model:]1`` or ``--gres=gpu:[model:]1``.

    ``gpu`` stays the standard GPU count of Snakemake (1) in the ``gpus`` style; in the ``gres``
    style it is 0, so that the SLURM executor sends only ``--gres``.
    """
    partition = environ.get(GPU_PARTITION) or "gpu"
    model = environ.get(GPU_MODEL) or ""
    style = environ.get(GPU_REQUEST) or "gpus"
    if style not in REQUEST_STYLES:
        raise ValueError(f"{GPU_REQUEST}={style!r}: expected one of {REQUEST_STYLES}")
    if style == "gres":
        return {"gpu": 0, "gres": f"gpu:{model}:1" if model else "gpu:1", "slurm_partition": partition}
    return {"gpu": 1, **({"gpu_model": model} if model else {}), "slurm_partition": partition}
