"""The codebook stage: residue sampling (``sample``), the trainer (``kmeans``), the stage that
writes the codebook (``train``), nearest-centroid assignment (``assign``) and usage metrics."""
