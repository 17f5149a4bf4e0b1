"""Snakemake entry point of rule `evaluate_structures`: token agreement with PDB/mmCIF structures."""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.api import StructureTokenizer  # noqa: E402
from structure_tokens.embed.embedder import EmbedOptions  # noqa: E402
from structure_tokens.evaluation import evaluate_structures  # noqa: E402
from structure_tokens.evaluation.tables import agreement_sections, write_html_tables  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
# Every residue of a chain needs a token, so long chains are always embedded in windows.
options = dataclasses.replace(EmbedOptions.from_config(params.model), long_policy="windows")
tokenizer = StructureTokenizer.from_files(inp.checkpoint, inp.codebook, options)


def esm_tokens(sequences):
    """Pipeline tokens (same model, layer and codebook) of the chain sequences."""
    return [protein.structure_tokens for protein in tokenizer.tokenize(sequences)]


table = evaluate_structures(
    inp.structures,
    token_fn=esm_tokens,
    k=tokenizer.codebook.k,
    seed=params.seed,
    out_tsv=out.tsv,
    out_json=out.json,
    out_png_tracks=out.tracks,
    model_name=tokenizer.model_name,
    min_length=params.evaluation["min_chain_length"],
    n_track_chains=params.evaluation["track_chains"],
    ss_method=params.evaluation["secondary_structure"],
)
write_html_tables(out.html, f"Token agreement with structure labels (K={tokenizer.codebook.k})", tokenizer.model_name,
                  agreement_sections(table))
log.info("structure agreement of %s:\n%s", tokenizer.model_name, table.drop(columns="description").to_string())
