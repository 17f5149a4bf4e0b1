rule train_codebook:
    """k-means codebook on a bounded, seeded residue sample of every shard."""
    input:
        per_shard(f"{OUT}/embeddings/{SHARD}.h5", train_shard_ids),
    output:
        codebook=protected(f"{OUT}/codebook/codebook_K{K}.npz"),
        training=f"{OUT}/codebook/training_K{K}.json",
    params:
        options=config["codebook"],
    threads: 4
    resources:
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    log:
        f"{OUT}/logs/train_codebook.log",
    benchmark:
        f"{OUT}/benchmarks/train_codebook.tsv"
    conda:
        "../envs/codebook.yaml"
    script:
        "../scripts/train_codebook.py"


rule codebook_summary:
    """Codebook quality on every tokenized residue (utilization, perplexity, dead codes, errors)."""
    input:
        tokens=per_shard(f"{OUT}/tokens/{SHARD}.h5"),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        training=f"{OUT}/codebook/training_K{K}.json",
    output:
        f"{OUT}/codebook_summary_K{K}.json",
    log:
        f"{OUT}/logs/codebook_summary.log",
    benchmark:
        f"{OUT}/benchmarks/codebook_summary.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/codebook.yaml"
    script:
        "../scripts/codebook_summary.py"
