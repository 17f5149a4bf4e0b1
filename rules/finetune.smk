rule finetune_shard:
    """One shard's instruction-tuning rows: rendered proteins in their leak-free splits, and counts."""
    input:
        tokens=f"{OUT}/tokens.parquet/{SHARD}.parquet",
        vocab=f"{OUT}/vocab.json",
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        clusters=[config["finetune"]["clusters_tsv"]] if config["finetune"]["clusters_tsv"] else [],
    output:
        temp(directory(f"{OUT}/sft_parts/{SHARD}")),
    log:
        f"{OUT}/logs/finetune_shard/{SHARD}.log",
    benchmark:
        f"{OUT}/job_benchmarks/finetune_shard/{SHARD}.tsv"
    conda:
        "../envs/tokenize.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        finetune=config["finetune"],
    script:
        "../scripts/finetune_shard.py"


rule finetune_data:
    """Instruction-tuning data: the shards' rows linked into one folder, a manifest and a dataset card."""
    input:
        parts=per_shard(f"{OUT}/sft_parts/{SHARD}"),
        vocab=f"{OUT}/vocab.json",
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        directory(f"{OUT}/sft"),
    log:
        f"{OUT}/logs/finetune_data.log",
    benchmark:
        f"{OUT}/job_benchmarks/finetune_data.tsv"
    conda:
        "../envs/tokenize.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=30,
    params:
        finetune=config["finetune"],
        source=config["input"]["source"],
        tokens=f"{OUT}/tokens.parquet",
    script:
        "../scripts/finetune_data.py"
