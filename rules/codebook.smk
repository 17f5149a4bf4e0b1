rule train_codebook:
    """k-means codebook on a bounded, seeded residue sample of every shard."""
    input:
        per_shard(f"{OUT}/embeddings/{SHARD}.h5", train_shard_ids),
    output:
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        training=f"{OUT}/codebook/training_K{K}.json",
    log:
        f"{OUT}/logs/train_codebook.log",
    benchmark:
        f"{OUT}/job_benchmarks/train_codebook.tsv"
    conda:
        "../envs/codebook.yaml"
    threads: 4
    resources:
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        codebook=config["codebook"],
    script:
        "../scripts/train_codebook.py"


rule codebook_summary:
    """Codebook quality on every tokenized residue (utilization, perplexity, dead codes, errors),
    from the shards' token counts."""
    input:
        counts=per_shard(f"{OUT}/token_counts/{SHARD}.json"),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        training=f"{OUT}/codebook/training_K{K}.json",
    output:
        f"{OUT}/codebook_summary_K{K}.json",
    log:
        f"{OUT}/logs/codebook_summary.log",
    benchmark:
        f"{OUT}/job_benchmarks/codebook_summary.tsv"
    conda:
        "../envs/codebook.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/codebook_summary.py"
