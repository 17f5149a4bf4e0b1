"""Logging for Snakemake script jobs: everything goes to the rule's log file and to stderr."""

from __future__ import annotations

import atexit
import logging
import resource
import sys

PEAK_RSS_MESSAGE = "peak RSS of this job: %.1f MiB"


def configure_logging(log_path: str | None) -> logging.Logger:
    """Send INFO and above to ``log_path`` (when given) and to stderr; return the package logger.

    When the job's process exits, its peak resident memory (the kernel's high-water mark, exact
    where Snakemake's ``benchmark:`` files only sample it) is logged: use it to size ``mem_mb``.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logger = logging.getLogger("structure_tokens")
    atexit.register(log_peak_rss, logger)
    return logger


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log_peak_rss(logger: logging.Logger) -> None:
    logger.info(PEAK_RSS_MESSAGE, peak_rss_mb())
