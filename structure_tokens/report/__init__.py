"""Quality report of a run: figures, HTML tables and a human-readable summary. The report draws
and lays out what the other stages computed; it computes no metric of its own."""
