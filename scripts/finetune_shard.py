"""Snakemake entry point of rule `finetune_shard` (one shard)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.llm.finetune import write_finetune_part
from structure_tokens.llm.options import FinetuneOptions
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp = snakemake.input
options = FinetuneOptions.from_config(snakemake.params.finetune)
part = write_finetune_part(inp.tokens, inp.vocab, inp.codebook, snakemake.output[0], options)
log.info("SFT rows of %s: %s; %d of %d proteins without %s text", inp.tokens,
         {split: info["examples"] for split, info in part["splits"].items()}, part["without_target"],
         part["proteins_read"], options.target)
