"""Snakemake entry point of rule `report`: figures and summary.md."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.evaluation.projection import pca_projection
from structure_tokens.report.options import ReportOptions
from structure_tokens.report.plots import plot_pca, plot_token_usage
from structure_tokens.report.summary import write_summary_md
from structure_tokens.workflow_logging import configure_logging

log = configure_logging(snakemake.log[0])
inp, out, params = snakemake.input, snakemake.output, snakemake.params
options = ReportOptions.from_config(params.report)
summary = json.loads(Path(inp.summary).read_text())
projection = pca_projection(
    list(inp.embeddings), list(inp.embedded_tokens), n_residues=options.pca_residues, seed=params.seed
)
plot_pca(projection, out.pca)
plot_token_usage(list(inp.tokens), summary["k"], out.usage)
write_summary_md(
    out.summary,
    prepare_summary=json.loads(Path(inp.prepared).read_text()),
    codebook_summary=summary,
    training=json.loads(Path(inp.training).read_text()),
    files={"figures": [out.pca, out.usage]},
)
log.info("report written to %s", out.summary)
