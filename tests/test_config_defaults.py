"""Defaults live in one place in spirit: the schema, config/config.yaml and the option classes agree."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from structure_tokens.config import SECTIONS
from structure_tokens.inputs.readers import read_proteinlmbench

from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "config/schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
READ_BY_RULES = {("model", "name"), ("model", "checkpoint"), ("model", "cache_dir")}  # rules/, not an options class


def schema_defaults(properties: dict) -> dict:
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


@pytest.mark.parametrize("section", SECTIONS)
def test_option_classes_schema_and_config_file_agree(section):
    properties = SCHEMA["properties"][section]["properties"]
    fields = {field.name: field for field in dataclasses.fields(SECTIONS[section])}
    for name, field in fields.items():
        assert name in properties, f"{section}.{name} is an option but not a documented key of the schema"
        if isinstance(properties[name].get("properties"), dict):  # a nested section, e.g. input.proteinlmbench
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert properties[name]["default"] == default == CONFIG[section][name], f"{section}.{name}"
    for name in properties:
        assert name in fields or (section, name) in READ_BY_RULES, f"{section}.{name}: no option class reads it"
        if (section, name) in READ_BY_RULES:
            assert properties[name]["default"] == CONFIG[section][name], f"{section}.{name}"


def test_nested_and_top_level_defaults_agree():
    nested = schema_defaults(SCHEMA["properties"]["input"]["properties"]["proteinlmbench"]["properties"])
    reader = {name: parameter.default for name, parameter in inspect.signature(read_proteinlmbench).parameters.items()
              if name in nested}
    assert nested == CONFIG["input"]["proteinlmbench"] == reader
    for key, spec in SCHEMA["properties"].items():
        if "default" in spec and key not in SECTIONS:
            assert CONFIG[key] == spec["default"], key
