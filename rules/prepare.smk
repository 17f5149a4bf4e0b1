checkpoint prepare:
    """Validate, de-duplicate and shard the input proteins; list every record in a manifest."""
    input:
        input_file(),
    output:
        manifest=f"{OUT}/prepared/manifest.tsv",
        shards=directory(f"{OUT}/prepared/shards"),
        summary=f"{OUT}/prepared/prepare_summary.json",
    log:
        f"{OUT}/logs/prepare.log",
    benchmark:
        f"{OUT}/job_benchmarks/prepare.tsv"
    conda:
        "../envs/inputs.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        input=config["input"],
        long_policy=config["model"]["long_policy"],
    script:
        "../scripts/prepare.py"
