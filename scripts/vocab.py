"""Snakemake entry point of rule `vocab`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.vocab import write_vocab
from structure_tokens.llm.options import OutputOptions
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
codebook = Codebook.load(snakemake.input.codebook)
options = OutputOptions.from_config(snakemake.params.llm)
vocab = write_vocab(snakemake.output[0], codebook.k, options.vocab_offset, codebook.sha256)
log.info("vocabulary of %d tokens written to %s", len(vocab["token_to_id"]), snakemake.output[0])
