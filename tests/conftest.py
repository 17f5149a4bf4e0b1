"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim randomly initialised ESM-2 in the released fair-esm file format."""
    return write_random_esm2_checkpoint(tmp_path_factory.mktemp("model") / "esm2_t2_32_tiny_random.pt")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's read-only real data (`../shared/data`), or a skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA
