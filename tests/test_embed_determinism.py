"""Identical runs, identical bytes: a shard's embeddings (and one-pass tokens) do not depend on the
number of threads a job computes with, nor on other load on the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from structure_tokens.embed.checkpoint import write_random_esm2_checkpoint
from structure_tokens.formats.codebook import Codebook
from structure_tokens.formats.shards import Protein, write_shard
from structure_tokens.inputs.validate import sequence_hash

from conftest import REPO

AMINO = "ACDEFGHIKLMNPQRSTVWY"
# esm2_t6_8M's width: its feed-forward sums run over 1,280 values, which MKL splits between threads
# in small batches (the 32-wide test model is too narrow for that)
LAYERS, WIDTH, HEADS = 2, 320, 20
# two windows, two full 2,048-token CPU batches, and a last batch of one short protein
LENGTHS = (1432, 1000, 1000, 100)

JOB = """
import hashlib, json, sys
from structure_tokens.embed.embedder import embed_shard
from structure_tokens.embed.options import EmbedOptions
from structure_tokens.formats.embeddings import EmbeddingShard
from structure_tokens.formats.tokens import TokenShard
from structure_tokens.threads import limit_threads
from structure_tokens.tokenize.one_pass import embed_and_tokenize_shard

threads, shard, checkpoint, codebook, out = sys.argv[1:]
limit_threads(int(threads))  # as the job scripts do, after their imports
embed_shard(shard, checkpoint, out + "/embeddings.h5", EmbedOptions(device="cpu"))
embed_and_tokenize_shard(shard, checkpoint, codebook, out + "/tokens.h5", EmbedOptions(device="cpu"))
with EmbeddingShard(out + "/embeddings.h5") as embeddings, TokenShard(out + "/tokens.h5") as tokens:
    print(json.dumps({f"{kind} of {stored.ids[i]}": hashlib.sha256(stored.protein(i).tobytes()).hexdigest()
                      for kind, stored in (("embeddings", embeddings), ("tokens", tokens))
                      for i in range(len(stored.ids))}))
"""
BUSY = "import time\nend = time.time() + 60\nwhile time.time() < end: pass"  # one core busy for at most 60 s


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("determinism")
    checkpoint = write_random_esm2_checkpoint(folder / "esm2_t2_320_random.pt", num_layers=LAYERS,
                                              embed_dim=WIDTH, attention_heads=HEADS)
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list(AMINO), n)) for n in LENGTHS]
    shard = folder / "shard_00000.tsv"
    write_shard(shard, [Protein(f"p{i}", s, sequence_hash(s)) for i, s in enumerate(sequences)])
    codebook = folder / "codebook.npz"
    Codebook(rng.normal(size=(64, WIDTH)).astype(np.float32), model_name=checkpoint.stem, layer=LAYERS, seed=0,
             n_train=64).save(codebook)
    return shard, checkpoint, codebook


def run_job(inputs, threads: int, out) -> dict:
    """Embed and one-pass tokenize the shard in a fresh process, as a workflow job does; a digest per protein."""
    out.mkdir()
    env = {name: value for name, value in os.environ.items() if name != "MKL_CBWR"}  # the package sets it
    result = subprocess.run([sys.executable, "-c", JOB, str(threads), *map(str, inputs), str(out)],
                            capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_embeddings_and_tokens_are_the_same_bytes_for_any_thread_count_and_load(inputs, tmp_path):
    reference = run_job(inputs, 1, tmp_path / "threads_1")
    for threads in (2, 3):
        assert run_job(inputs, threads, tmp_path / f"threads_{threads}") == reference, f"{threads} threads"
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]  # both cores, while the job runs
    try:
        assert run_job(inputs, 2, tmp_path / "loaded") == reference, "2 threads, busy machine"
    finally:
        for process in busy:
            process.kill()
            process.wait()
