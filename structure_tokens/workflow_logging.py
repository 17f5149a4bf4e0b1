"""Logging for Snakemake script jobs: everything goes to the rule's log file and to stderr."""

from __future__ import annotations

import atexit
import logging
import resource
import sys
from types import TracebackType
from typing import Any

PEAK_RSS_MESSAGE = "peak RSS of this job: %.1f MiB"


def configure_logging(log_path: str | None) -> logging.Logger:
    """Send INFO and above to ``log_path`` (when given) and to stderr; return the package logger.

    When the job's process exits, its peak resident memory (the kernel's high-water mark, exact
    where Snakemake's ``benchmark:`` files only sample it) is logged: use it to size ``mem_mb``.
    A job that dies of an uncaught exception ends its log with the error and its traceback.
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
    ending = _JobEnding(logger)
    atexit.register(ending.at_exit)
    sys.excepthook = ending.on_uncaught_exception
    return logger


def start_job(snakemake: Any) -> logging.Logger:
    """What every job script does first: log to the job's log file, cap its thread pools at the rule's
    threads (and log the caps); returns the package logger."""
    from structure_tokens.threads import limit_threads

    logger = configure_logging(snakemake.log[0])
    logger.info("thread pools capped at the rule's threads: %s", limit_threads(snakemake.threads))
    return logger


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    On Linux, the high-water mark of this program's own memory (``VmHWM``): ``ru_maxrss`` would
    also count the process that started it (Linux keeps it across ``exec``), so every job started
    by Snakemake would report at least the Snakemake process's size. Elsewhere, ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 if sys.platform != "darwin" else maxrss / 2**20  # KiB on Linux, bytes on macOS


class _JobEnding:
    """The last lines of a job's log: its peak memory, then the error that ended it, if any."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.done = False

    def at_exit(self) -> None:
        if not self.done:
            self.logger.info(PEAK_RSS_MESSAGE, peak_rss_mb())

    def on_uncaught_exception(self, kind: type[BaseException], error: BaseException,
                              traceback: TracebackType | None) -> None:
        self.logger.info(PEAK_RSS_MESSAGE, peak_rss_mb())
        self.done = True
        self.logger.critical("job failed with %s: %s", kind.__name__, error, exc_info=(kind, error, traceback))
