rule report:
    """Figures and a readable summary of the run, from the shards' token counts (no token file is read
    but those of the few shards the PCA samples)."""
    input:
        embeddings=per_shard(f"{OUT}/embeddings/{SHARD}.h5", pca_shard_ids),
        embedded_tokens=per_shard(f"{OUT}/tokens/{SHARD}.h5", pca_shard_ids),
        counts=per_shard(f"{OUT}/token_counts/{SHARD}.json"),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        summary=f"{OUT}/codebook_summary_K{K}.json",
        sft=f"{OUT}/sft",
        training=f"{OUT}/codebook/training_K{K}.json",
        prepared=f"{OUT}/prepared/prepare_summary.json",
        throughput=throughput_files,
    output:
        pca=report(
            f"{OUT}/report/clustering_pca.png",
            caption="../docs/report/clustering_pca.rst",
            category="1. Codebook",
            labels={"figure": "PCA of residues by token"},
        ),
        usage=report(
            f"{OUT}/report/token_usage.png",
            caption="../docs/report/token_usage.rst",
            category="1. Codebook",
            labels={"figure": "code usage"},
        ),
        run_summary=report(
            f"{OUT}/report/run_summary.html",
            caption="../docs/report/run_summary.rst",
            category="0. Run",
            labels={"page": "run summary"},
        ),
        throughput=report(
            f"{OUT}/report/throughput.png",
            caption="../docs/report/throughput.rst",
            category="0. Run",
            labels={"page": "throughput per shard"},
        ),
        summary=f"{OUT}/report/summary.md",
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/job_benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=30,
    params:
        report=config["report"],
        seed=config["codebook"]["seed"],
    script:
        "../scripts/report.py"
