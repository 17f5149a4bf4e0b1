"""Snakemake entry point of rule `train_codebook`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.codebook.kmeans import train_codebook_from_shards  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
options = snakemake.params.options  # noqa: F821
codebook = train_codebook_from_shards(
    list(snakemake.input),  # noqa: F821
    snakemake.output.codebook,  # noqa: F821
    snakemake.output.training,  # noqa: F821
    k=options["k"],
    seed=options["seed"],
    sample_per_shard=options["sample_per_shard"],
    max_train_residues=options["max_train_residues"],
    holdout_fraction=options["holdout_fraction"],
    batch_size=options["batch_size"],
    max_iter=options["max_iter"],
)
log.info("codebook K=%d dim=%d sha256=%s", codebook.k, codebook.dim, codebook.sha256)
