"""Snakemake entry point of rule `finetune_data`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.finetune import FinetuneOptions, write_finetune_data  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
manifest = write_finetune_data(
    snakemake.input.tokens,  # noqa: F821
    snakemake.input.vocab,  # noqa: F821
    snakemake.input.codebook,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    FinetuneOptions(**snakemake.params.options),  # noqa: F821
)
log.info("SFT data written: %s", {split: info["examples"] for split, info in manifest["splits"].items()})
