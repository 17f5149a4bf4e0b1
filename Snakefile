"""Proteins -> ESM-2 embeddings -> k-means codebook -> structure tokens -> LLM-ready outputs.

Run locally:    snakemake --cores 4
Run on SLURM:   snakemake --profile profiles/slurm
See docs/configuration.md for every configuration key and docs/outputs.md for every output file.
"""

import sys

import yaml
from snakemake.logging import logger
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

WORKFLOW_DIR = str(workflow.current_basedir)  # this checkout, also when used as a module of another workflow
sys.path.insert(0, WORKFLOW_DIR)  # its pipeline package

from structure_tokens.config import check_config, coerce_yaml_scalars
from structure_tokens.workflow_lock import OutputFolderBusy, claim_output_folder, only_inspects


configfile: os.path.join(WORKFLOW_DIR, "config", "config.yaml")


SCHEMA = os.path.join(WORKFLOW_DIR, "config", "schema.yaml")
with open(SCHEMA) as schema:
    coerce_yaml_scalars(config, yaml.safe_load(schema))  # --config values arrive as strings
validate(config, SCHEMA)
try:
    check_config(config)  # every cross-field constraint, before any job runs
except ValueError as error:
    raise WorkflowError(f"invalid config: {error}") from None


if workflow.is_main_process:  # one run per output folder (jobs run in other processes)
    try:
        OUTPUT_FOLDER_LOCK = claim_output_folder(config["output_dir"])
    except OutputFolderBusy as busy:
        if not only_inspects(sys.argv[1:]):
            raise WorkflowError(str(busy)) from None
        logger.warning(f"{busy}; this command only inspects it")
        OUTPUT_FOLDER_LOCK = False  # checks that write (damaged-file marks) are left to that run


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


rule all_tokens:
    """Target `snakemake all_tokens`: the token table and interleaved stream of every shard, and the
    vocabulary, without the report, the instruction data or the evaluation."""
    input:
        f"{OUT}/vocab.json",
        shard_outputs,
