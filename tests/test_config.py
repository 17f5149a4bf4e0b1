"""How config reaches the package: legacy keys migrated, options built from their sections."""

from __future__ import annotations

import pytest

from structure_tokens.config import migrate_legacy_keys
from structure_tokens.embed.embedder import EmbedOptions
from structure_tokens.evaluation.structure_agreement import EvaluationOptions
from structure_tokens.llm.outputs import OutputOptions

from conftest import run_snakemake


def test_legacy_top_level_input_keys_move_under_input_and_win():
    config = {"shard_size": 50, "min_length": 3, "input": {"source": "demo", "shard_size": 1000}}
    messages = migrate_legacy_keys(config)
    assert config == {"input": {"source": "demo", "shard_size": 50, "min_length": 3}}
    assert [m.split("'")[1] for m in messages] == ["min_length", "shard_size"]
    assert "'input.shard_size'" in messages[1]
    assert migrate_legacy_keys(config) == []  # nothing left to move


def test_options_take_their_fields_from_a_section_and_validate_them():
    assert EmbedOptions.from_config({"layer": 3, "name": "esm2_t6_8M_UR50D", "device": "cpu"}) == \
        EmbedOptions(layer=3, device="cpu")  # `name` belongs to fetch_model, not to the embedder
    with pytest.raises(ValueError, match="evaluation.secondary_structure must be one of"):
        EvaluationOptions.from_config({"secondary_structure": "stride"})
    with pytest.raises(ValueError, match="llm.vocab_offset must be >= 0"):
        OutputOptions.from_config({"vocab_offset": -1})


def test_workflow_warns_about_a_legacy_key(tmp_path):
    out = run_snakemake(tmp_path, "-n", "--cores", "1", "--config", "shard_size=50")
    assert "config key 'shard_size' has moved to 'input.shard_size'" in out.stdout + out.stderr
