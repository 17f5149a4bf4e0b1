"""Quality evaluation: computes metrics and writes them as data (JSON/TSV); drawing is the report's.

``heldout``: codebook quality on held-out proteins; ``structure_agreement``: agreement of the
tokens with labels of real structures (``structures``, ``labels``, ``baselines``, ``agreement``);
``projection``: the PCA sample the report draws.
"""
