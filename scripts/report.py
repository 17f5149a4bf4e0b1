"""Snakemake entry point of rule `report`: figures and summary.md."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.report.plots import plot_pca, plot_token_usage  # noqa: E402
from structure_tokens.report.summary import write_summary_md  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
summary = json.loads(Path(inp.summary).read_text())
plot_pca(list(inp.embeddings), list(inp.embedded_tokens), out.pca, n_residues=params.pca_residues, seed=params.seed)
plot_token_usage(list(inp.tokens), summary["k"], out.usage)
write_summary_md(
    out.summary,
    prepare_summary=json.loads(Path(inp.prepared).read_text()),
    codebook_summary=summary,
    training=json.loads(Path(inp.training).read_text()),
    files={"figures": [out.pca, out.usage]},
)
log.info("report written to %s", out.summary)
