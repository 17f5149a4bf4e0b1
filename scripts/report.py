"""Snakemake entry point of rule `report`: figures, the run summary page and summary.md."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.metrics import read_token_counts
from structure_tokens.evaluation.projection import pca_projection
from structure_tokens.formats.provenance import weights_of
from structure_tokens.report.options import ReportOptions
from structure_tokens.report.plots import plot_pca, plot_token_usage
from structure_tokens.report.run_summary import load_throughput, plot_throughput, write_run_summary
from structure_tokens.report.summary import write_summary_md
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp, out, params = snakemake.input, snakemake.output, snakemake.params
options = ReportOptions.from_config(params.report)
summary = json.loads(Path(inp.summary).read_text())
prepared = json.loads(Path(inp.prepared).read_text())
finetune = json.loads((Path(inp.sft) / "manifest.json").read_text())
model_name, layer = summary["model_name"], summary["layer"]
projection = pca_projection(
    list(inp.embeddings), list(inp.embedded_tokens), n_residues=options.pca_residues, seed=params.seed
)
plot_pca(projection, out.pca)
counts, distinct_histogram, _ = read_token_counts(list(inp.counts), summary["k"], summary["codebook_sha256"])
plot_token_usage(counts, distinct_histogram, out.usage, model_name=model_name, layer=layer)
throughput = load_throughput(inp.throughput)
plot_throughput(throughput, model_name, out.throughput)
model = (model_name, weights_of(summary))
write_run_summary(out.run_summary, model, prepared, finetune, throughput)
write_summary_md(
    out.summary,
    prepare_summary=prepared,
    codebook_summary=summary,
    training=json.loads(Path(inp.training).read_text()),
    finetune_manifest=finetune,
    files={"figures": [out.pca, out.usage, out.throughput], "pages": [out.run_summary]},
)
for warning in finetune["warnings"]:
    log.warning("instruction data: %s", warning)
log.info("report written to %s", out.summary)
