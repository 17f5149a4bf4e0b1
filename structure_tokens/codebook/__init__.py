"""k-means codebook of per-residue embeddings: sampling, training, quality metrics."""
