"""Snakemake entry point of rule `heldout_metrics`: codebook quality on held-out proteins."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.evaluation.heldout import heldout_metrics
from structure_tokens.report.tables import write_heldout_metrics
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp, out, params = snakemake.input, snakemake.output, snakemake.params
metrics = heldout_metrics(
    list(inp.embeddings),
    list(inp.shards),
    list(inp.train_embeddings),
    inp.codebook,
    CodebookOptions.from_config(params.codebook),
    seed_stability=params.seed_stability,
)
write_heldout_metrics(metrics, out.json, out.tsv, out.html)
log.info(
    "held-out metrics of %s: %d proteins, %d residues, stability %s",
    metrics["model_name"],
    metrics["n_heldout_proteins"],
    metrics["n_heldout_residues"],
    metrics["seed_stability"],
)
