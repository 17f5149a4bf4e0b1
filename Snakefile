"""Proteins -> ESM-2 embeddings -> k-means codebook -> structure tokens -> LLM-ready outputs.

Run locally:    snakemake --cores 4
Run on SLURM:   snakemake --profile profiles/slurm
See README.md for every configuration key and output file.
"""

import sys

from snakemake.logging import logger
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

WORKFLOW_DIR = str(workflow.current_basedir)  # this checkout, also when used as a module of another workflow
sys.path.insert(0, WORKFLOW_DIR)  # its pipeline package

from structure_tokens.config import check_config, migrate_legacy_keys


configfile: os.path.join(WORKFLOW_DIR, "config", "config.yaml")


for message in migrate_legacy_keys(config):
    logger.warning(message)
validate(config, os.path.join(WORKFLOW_DIR, "config", "schema.yaml"))
try:
    check_config(config)  # every cross-field constraint, before any job runs
except ValueError as error:
    raise WorkflowError(f"invalid config: {error}") from None


report: "docs/report/workflow.rst"


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/embed.smk"
include: "rules/codebook.smk"
include: "rules/tokenize.smk"
include: "rules/report.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
        shard_outputs,
