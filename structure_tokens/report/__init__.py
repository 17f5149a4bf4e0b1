"""Quality report of a run: figures and a human-readable summary."""
