"""Turn proteins into discrete ESM-2 structure tokens for protein-language LLMs."""

__version__ = "0.1.0"
