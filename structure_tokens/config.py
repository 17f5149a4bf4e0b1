"""What the workflow does with its config when it starts: read command-line values as YAML, check it all.

:func:`coerce_yaml_scalars` gives ``--config`` values the types the schema asks for.
:func:`check_config` builds every stage's options, so that a bad value or combination of values
fails at once, naming the key, instead of in a job hours later.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import yaml

from structure_tokens.codebook.options import CodebookOptions
from structure_tokens.embed.options import ESM2_LAYERS, EmbedOptions, resolve_layer
from structure_tokens.evaluation.options import EvaluationOptions
from structure_tokens.inputs.options import InputOptions
from structure_tokens.llm.options import FinetuneOptions, OutputOptions
from structure_tokens.report.options import ReportOptions

JSON_TYPES = {"boolean": bool, "integer": int, "number": (int, float), "null": type(None), "string": str,
              "object": dict, "array": list}


def coerce_yaml_scalars(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Read as YAML (in place) each string value whose schema does not allow a string.

    Snakemake 9 passes ``--config keep_embeddings=false`` as the string ``'false'`` and the values
    of ``--config 'codebook={k: 64}'`` as strings (``'64'``): such a value becomes ``False`` or
    ``64`` when the schema wants that type there. Strings the schema allows are kept as given, and a
    value that does not read as an allowed type is left for the schema to reject.
    """
    for key, value in config.items():
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        rule = properties.get(key, extra if isinstance(extra, dict) else {})
        types = rule.get("type", [])
        types = [types] if isinstance(types, str) else types
        if isinstance(value, dict):
            coerce_yaml_scalars(value, rule)
        elif isinstance(value, str) and types and "string" not in types:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if any(isinstance(parsed, JSON_TYPES[t]) and not (t in ("integer", "number") and isinstance(parsed, bool))
                   for t in types):
                config[key] = parsed


SECTIONS = {"input": InputOptions, "model": EmbedOptions, "codebook": CodebookOptions, "llm": OutputOptions,
            "finetune": FinetuneOptions, "evaluation": EvaluationOptions, "report": ReportOptions}


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the key when a section's values, or files it names, do not fit.

    Builds each section's options (their own checks, e.g. ``finetune.fractions`` summing to 1) and
    checks that the input files and folders the config names exist. Light to import: no torch,
    pandas or scikit-learn, so the main Snakemake process can run it.
    """
    for section, options in SECTIONS.items():
        options.from_config(config.get(section) or {})
    files = {"input.path": (config.get("input") or {}).get("path"),
             "model.checkpoint": (config.get("model") or {}).get("checkpoint"),
             "finetune.clusters_tsv": (config.get("finetune") or {}).get("clusters_tsv"),
             "evaluation.structures": (config.get("evaluation") or {}).get("structures")}
    for key, path in files.items():
        if path and not os.path.exists(path):
            raise ValueError(f"{key}: {path} does not exist")
    check_model_layer(config.get("model") or {})


def check_model_layer(model: Mapping[str, Any]) -> None:
    """``model.layer`` within the model's depth: from a released model's name, or the checkpoint's config.

    Reading a checkpoint's config needs torch (about 1 s); it is read only for a layer other
    than the default -1 (the last, always valid).
    """
    layer, checkpoint = model.get("layer", -1), model.get("checkpoint")
    if checkpoint and layer != -1:
        from structure_tokens.embed.checkpoint import checkpoint_num_layers

        resolve_layer(layer, checkpoint_num_layers(checkpoint))
    elif not checkpoint and model.get("name") in ESM2_LAYERS:
        resolve_layer(layer, ESM2_LAYERS[model["name"]])
