rule tokenize:
    """Nearest-centroid structure token for every residue of one shard.

    Shards without stored embeddings (`keep_embeddings: false`) are embedded and tokenized in one
    GPU pass, writing only tokens.
    """
    input:
        unpack(tokenize_input),
    output:
        f"{OUT}/tokens/{SHARD}.h5",
    params:
        options=config["model"],
    threads: 4
    resources:
        gpu=tokenize_needs_gpu,
        mem_mb=lambda wildcards, attempt: (16000 if tokenize_needs_gpu(wildcards) else 4000) * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    log:
        f"{OUT}/logs/tokenize/{SHARD}.log",
    benchmark:
        f"{OUT}/benchmarks/tokenize/{SHARD}.tsv"
    conda:
        "../envs/tokenize.yaml"
    script:
        "../scripts/tokenize_shard.py"


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
