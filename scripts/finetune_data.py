"""Snakemake entry point of rule `finetune_data`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.llm.finetune import assemble_finetune_data
from structure_tokens.llm.options import FinetuneOptions
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
inp, params = snakemake.input, snakemake.params
options = FinetuneOptions.from_config(params.finetune)
manifest = assemble_finetune_data(list(inp.parts), inp.vocab, inp.codebook, snakemake.output[0], options,
                                  source=params.source, token_table=params.tokens)
log.info("SFT data written: %s", {split: info["examples"] for split, info in manifest["splits"].items()})
