"""Snakemake entry point of rule `evaluate_structures`: token agreement with PDB/mmCIF structures."""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.api import StructureTokenizer
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.evaluation.options import EvaluationOptions
from structure_tokens.evaluation.structure_agreement import evaluate_structures, write_structure_evaluation
from structure_tokens.report.tables import agreement_sections, write_html_tables
from structure_tokens.report.tracks import plot_token_label_distribution, plot_token_tracks
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp, out, params = snakemake.input, snakemake.output, snakemake.params
# Every residue of a chain needs a token, so long chains are always embedded in windows.
embed_options = dataclasses.replace(EmbedOptions.from_config(params.model), long_policy="windows")
options = EvaluationOptions.from_config(params.evaluation)
tokenizer = StructureTokenizer.from_files(inp.checkpoint, inp.codebook, embed_options)


def esm_tokens(sequences):
    """Pipeline tokens (same model, layer and codebook) of the chain sequences."""
    return [protein.structure_tokens for protein in tokenizer.tokenize(sequences)]


evaluation = evaluate_structures(
    inp.structures,
    token_fn=esm_tokens,
    k=tokenizer.codebook.k,
    seed=params.seed,
    model_name=tokenizer.model_name,
    min_length=options.min_chain_length,
    ss_method=options.secondary_structure,
)
write_structure_evaluation(evaluation, out.tsv, out.json)
plot_token_tracks(out.tracks, evaluation, n_shown=options.track_chains)
plot_token_label_distribution(out.three_di, evaluation, label="3di")
write_html_tables(
    out.html,
    f"Token agreement with structure labels (K={tokenizer.codebook.k})",
    (tokenizer.model_name, tokenizer.provenance.weights),
    agreement_sections(evaluation.table),
)
table = evaluation.table.drop(columns="description").to_string()
log.info("structure agreement of %s:\n%s", tokenizer.model_name, table)
