"""Snakemake entry point of rule `codebook_summary`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.metrics import write_codebook_summary
from structure_tokens.threads import limit_threads
from structure_tokens.workflow_logging import configure_logging

log = configure_logging(snakemake.log[0])
log.info("thread pools capped at the rule's threads: %s", limit_threads(snakemake.threads))
inp = snakemake.input
summary = write_codebook_summary(list(inp.counts), inp.codebook, inp.training, snakemake.output[0])
log.info("codebook summary: %s", summary)
