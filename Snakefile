"""Proteins -> ESM-2 embeddings -> k-means codebook -> structure tokens -> LLM-ready outputs.

Run locally:    snakemake --cores 4
Run on SLURM:   snakemake --profile profiles/slurm
See README.md for every configuration key and output file.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, os.path.join(workflow.basedir, "config", "schema.yaml"))


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
    input:
        final_outputs(),
    default_target: True
