"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_seconds(action: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``action()`` over ``repeats`` runs, and what its last run returned."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
