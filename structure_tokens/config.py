"""The workflow config between releases: keys that moved, and moving them.

Release 0.1 kept the input selection keys at the top level; they now live under ``input:``.
Old configs keep working for one release: :func:`migrate_legacy_keys` moves the keys and says so.
"""

from __future__ import annotations

from typing import Any

MOVED_TO_INPUT = ("num_proteins", "min_length", "max_length", "nonstandard_residues", "shard_size")


def migrate_legacy_keys(config: dict[str, Any]) -> list[str]:
    """Move top-level keys of :data:`MOVED_TO_INPUT` into ``config["input"]`` (in place).

    A key given at the top level wins over the same key under ``input:``, since the top-level one
    is what an old config file or ``--config shard_size=...`` set. Returns one deprecation
    message per moved key.
    """
    messages = []
    for key in MOVED_TO_INPUT:
        if key in config:
            config.setdefault("input", {})[key] = config.pop(key)
            messages.append(f"config key '{key}' has moved to 'input.{key}'; the top-level key is deprecated "
                            "and will stop working in the next release")
    return messages
