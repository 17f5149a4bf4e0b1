"""Snakemake entry point of rule `fetch_model`: download fair-esm weights into the cache."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the package of this checkout

from structure_tokens.embed.checkpoint import WeightsUnavailableError, download_weights
from structure_tokens.workflow_logging import start_job

log = start_job(snakemake)
# The output is <cache_dir>/checkpoints/<name>.pt, the layout torch.hub and fair-esm use.
cache_dir = Path(snakemake.output[0]).parent.parent
try:
    path = download_weights(snakemake.params.name, cache_dir)
except WeightsUnavailableError as error:  # expected offline: the advice alone, no traceback
    log.error("%s", error)
    sys.exit(1)
log.info("model weights ready: %s", path)
