"""How config reaches the package: every stage's options are a frozen dataclass built from its
config section with ``Options.from_config(section)``."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="FromConfig")


class FromConfig:
    """Mixin of a dataclass whose fields are the keys of one config section."""

    @classmethod
    def from_config(cls: type[T], section: Mapping[str, Any]) -> T:
        """Options from a config section; keys of the section that are not fields are ignored
        (the section may hold keys for other consumers; the workflow validates it with a schema)."""
        names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in section.items() if key in names})
