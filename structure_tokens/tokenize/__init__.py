"""Per-residue structure tokens (nearest codebook centroid) and the LLM-ready outputs."""
