"""Snakemake entry point of rule `llm_outputs`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.tokenize.llm import write_llm_outputs  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
stats = write_llm_outputs(
    list(snakemake.input.shards),  # noqa: F821
    list(snakemake.input.tokens),  # noqa: F821
    snakemake.input.codebook,  # noqa: F821
    out_parquet=snakemake.output.parquet,  # noqa: F821
    out_vocab=snakemake.output.vocab,  # noqa: F821
    out_jsonl=snakemake.output.interleaved,  # noqa: F821
    vocab_offset=snakemake.params.vocab_offset,  # noqa: F821
)
log.info("LLM outputs written: %s", stats)
