"""Snakemake entry point of rule `llm_outputs` (one shard)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.llm.options import OutputOptions
from structure_tokens.llm.outputs import write_shard_outputs
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp, out = snakemake.input, snakemake.output
stats = write_shard_outputs(inp.shard, inp.tokens, inp.codebook, OutputOptions.from_config(snakemake.params.llm),
                            out_parquet=out.parquet, out_jsonl=out.interleaved, out_counts=out.counts)
log.info("LLM outputs of %s written: %s", inp.shard, stats)
