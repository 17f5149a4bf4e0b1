rule finetune_data:
    """Instruction-tuning data: rendered proteins, leak-free splits, Parquet shards and a manifest."""
    input:
        tokens=f"{OUT}/tokens.parquet",
        vocab=f"{OUT}/vocab.json",
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        clusters=[config["finetune"]["clusters_tsv"]] if config["finetune"]["clusters_tsv"] else [],
    output:
        directory(f"{OUT}/sft"),
    params:
        options=config["finetune"],
    log:
        f"{OUT}/logs/finetune_data.log",
    benchmark:
        f"{OUT}/benchmarks/finetune_data.tsv"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=60,
    conda:
        "../envs/tokenize.yaml"
    script:
        "../scripts/finetune_data.py"
