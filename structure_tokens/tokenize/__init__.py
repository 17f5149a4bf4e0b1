"""Per-residue structure tokens: the nearest codebook centroid of every residue, from stored
embeddings (``from_embeddings``) or in one pass with the embedding (``one_pass``)."""
