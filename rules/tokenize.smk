if KEEP_EMBEDDINGS:

    rule tokenize:
        """Nearest-centroid structure token for every residue of one shard's stored embeddings."""
        input:
            embeddings=f"{OUT}/embeddings/{SHARD}.h5",
            codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        output:
            f"{OUT}/tokens/{SHARD}.h5",
        log:
            f"{OUT}/logs/tokenize/{SHARD}.log",
        benchmark:
            f"{OUT}/job_benchmarks/tokenize/{SHARD}.tsv"
        conda:
            "../envs/tokenize.yaml"
        threads: 2
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
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
            tokens=f"{OUT}/tokens/{SHARD}.h5",
            throughput=f"{OUT}/job_benchmarks/embed_tokenize/{SHARD}.json",
        log:
            f"{OUT}/logs/embed_tokenize/{SHARD}.log",
        benchmark:
            f"{OUT}/job_benchmarks/embed_tokenize/{SHARD}.tsv"
        conda:
            conda_env("embed")
        threads: 4
        resources:
            **GPU_JOB,
            mem_mb=lambda wildcards, attempt: 16000 * attempt,
            runtime=lambda wildcards, attempt: 240 * attempt,
        params:
            model=config["model"],
        script:
            "../scripts/embed_tokenize.py"


rule llm_outputs:
    """One shard's part of the token table and of the interleaved stream, and its token counts."""
    input:
        shard=f"{OUT}/prepared/shards/{SHARD}.tsv",
        tokens=f"{OUT}/tokens/{SHARD}.h5",
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        parquet=f"{OUT}/tokens.parquet/{SHARD}.parquet",
        interleaved=f"{OUT}/interleaved.jsonl/{SHARD}.jsonl",
        counts=f"{OUT}/token_counts/{SHARD}.json",
    log:
        f"{OUT}/logs/llm_outputs/{SHARD}.log",
    benchmark:
        f"{OUT}/job_benchmarks/llm_outputs/{SHARD}.tsv"
    conda:
        "../envs/tokenize.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        llm=config["llm"],
    script:
        "../scripts/llm_outputs.py"


rule vocab:
    """The LLM vocabulary: amino acids, the codebook's structure tokens, special tokens."""
    input:
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        f"{OUT}/vocab.json",
    log:
        f"{OUT}/logs/vocab.log",
    benchmark:
        f"{OUT}/job_benchmarks/vocab.tsv"
    conda:
        "../envs/tokenize.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        llm=config["llm"],
    script:
        "../scripts/vocab.py"
