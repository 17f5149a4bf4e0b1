rule finetune_data:
    """Instruction-tuning data: rendered proteins, leak-free splits, Parquet shards and a manifest."""
    input:
        tokens=f"{OUT}/tokens.parquet",
        vocab=f"{OUT}/vocab.json",
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        clusters=[config["finetune"]["clusters_tsv"]] if config["finetune"]["clusters_tsv"] else [],
    output:
        directory(f"{OUT}/sft"),
    log:
        f"{OUT}/logs/finetune_data.log",
    benchmark:
        f"{OUT}/job_benchmarks/finetune_data.tsv"
    conda:
        "../envs/tokenize.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    params:
        finetune=config["finetune"],
        source=config["input"]["source"],
    script:
        "../scripts/finetune_data.py"
