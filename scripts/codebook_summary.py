"""Snakemake entry point of rule `codebook_summary`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.codebook.metrics import write_codebook_summary  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
summary = write_codebook_summary(
    list(snakemake.input.tokens),  # noqa: F821
    snakemake.input.codebook,  # noqa: F821
    snakemake.input.training,  # noqa: F821
    snakemake.output[0],  # noqa: F821
)
log.info("codebook summary: %s", summary)
