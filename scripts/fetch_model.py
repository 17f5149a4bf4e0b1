"""Snakemake entry point of rule `fetch_model`: download fair-esm weights into the cache."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (the package)

from structure_tokens.embed.checkpoint import download_weights  # noqa: E402
from structure_tokens.workflow_logging import configure_logging  # noqa: E402

log = configure_logging(snakemake.log[0])  # noqa: F821
# The output is <cache_dir>/checkpoints/<name>.pt, the layout torch.hub and fair-esm use.
cache_dir = Path(snakemake.output[0]).parent.parent  # noqa: F821
path = download_weights(snakemake.params.name, cache_dir)  # noqa: F821
log.info("model weights ready: %s", path)
