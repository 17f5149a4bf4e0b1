checkpoint prepare:
    """Validate, de-duplicate and shard the input proteins; list every record in a manifest.

    The shard files, `prepared/shards/shard_*.tsv`, are not a declared output: Snakemake deletes
    a job's outputs before it runs, so every shard would get a new modification time and every
    embed job would run again. `prepare` itself rewrites only the shards whose bytes change and
    removes those left over; the summary lists the shards (see `shard_ids`).
    """
    input:
        input_file(),
    output:
        manifest=f"{OUT}/prepared/manifest.tsv",
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
        shards=f"{OUT}/prepared/shards",
    script:
        "../scripts/prepare.py"
