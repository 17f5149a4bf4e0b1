"""Input stage: read (``readers``), validate (``validate``), de-duplicate (``seen``) and shard
(``prepare``) proteins; ``options`` holds the ``input:`` config section."""
