if KEEP_EMBEDDINGS:

    rule tokenize:
        """Nearest-centroid structure token for every residue of one shard's stored embeddings."""
        input:
            embeddings=f"{OUT}/embeddings/{SHARD}.h5",
            codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        output:
            f"{OUT}/tokens/{SHARD}.h5",
        threads: 2
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        log:
            f"{OUT}/logs/tokenize/{SHARD}.log",
        benchmark:
            f"{OUT}/benchmarks/tokenize/{SHARD}.tsv"
        conda:
            "../envs/tokenize.yaml"
        script:
            "../scripts/tokenize_shard.py"

else:

    rule embed_tokenize:
        """`keep_embeddings: false`: embed one shard and assign tokens on the GPU in one pass.

        Only tokens are written; the embeddings never touch the disk.
        """
        input:
            shard=f"{OUT}/prepared/shards/{SHARD}.tsv",
            checkpoint=model_checkpoint(),
            codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        output:
            f"{OUT}/tokens/{SHARD}.h5",
        params:
            options=config["model"],
        threads: 4
        resources:
            gpu=1,
            mem_mb=lambda wildcards, attempt: 16000 * attempt,
            runtime=lambda wildcards, attempt: 240 * attempt,
        log:
            f"{OUT}/logs/embed_tokenize/{SHARD}.log",
        benchmark:
            f"{OUT}/benchmarks/embed_tokenize/{SHARD}.tsv"
        conda:
            "../envs/embed.yaml"
        script:
            "../scripts/embed_tokenize.py"


rule llm_outputs:
    """Tokens table, vocabulary and interleaved amino-acid/structure streams for LLM training."""
    input:
        shards=per_shard(f"{OUT}/prepared/shards/{SHARD}.tsv"),
        tokens=per_shard(f"{OUT}/tokens/{SHARD}.h5"),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        parquet=f"{OUT}/tokens.parquet",
        vocab=f"{OUT}/vocab.json",
        interleaved=f"{OUT}/interleaved.jsonl",
    params:
        vocab_offset=config["llm"]["vocab_offset"],
    log:
        f"{OUT}/logs/llm_outputs.log",
    benchmark:
        f"{OUT}/benchmarks/llm_outputs.tsv"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    conda:
        "../envs/tokenize.yaml"
    script:
        "../scripts/llm_outputs.py"
