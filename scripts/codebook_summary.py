"""Snakemake entry point of rule `codebook_summary`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.metrics import write_codebook_summary
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp = snakemake.input
summary = write_codebook_summary(list(inp.counts), inp.codebook, inp.training, snakemake.output[0])
log.info("codebook summary: %s", summary)
