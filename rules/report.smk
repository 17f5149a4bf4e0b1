rule report:
    """Figures and a readable summary of the run."""
    input:
        embeddings=per_shard(f"{OUT}/embeddings/{SHARD}.h5", embedded_shard_ids),
        embedded_tokens=per_shard(f"{OUT}/tokens/{SHARD}.h5", embedded_shard_ids),
        tokens=per_shard(f"{OUT}/tokens/{SHARD}.h5"),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
        summary=f"{OUT}/codebook_summary_K{K}.json",
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
        mem_mb=4000,
        runtime=30,
    params:
        report=config["report"],
        seed=config["codebook"]["seed"],
        benchmarks=f"{OUT}/job_benchmarks",
    script:
        "../scripts/report.py"
