"""Logging for Snakemake script jobs: everything goes to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys


def configure_logging(log_path: str | None) -> logging.Logger:
    """Send INFO and above to ``log_path`` (when given) and to stderr; return the package logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("structure_tokens")
