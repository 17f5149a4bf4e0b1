checkpoint prepare:
    """Validate, de-duplicate and shard the input proteins; list every record in a manifest."""
    input:
        input_file(),
    output:
        manifest=f"{OUT}/prepared/manifest.tsv",
        shards=directory(f"{OUT}/prepared/shards"),
        summary=f"{OUT}/prepared/prepare_summary.json",
    params:
        input=config["input"],
        num_proteins=config["num_proteins"],
        min_length=config["min_length"],
        max_length=config["max_length"],
        nonstandard=config["nonstandard_residues"],
        long_policy=config["model"]["long_policy"],
        shard_size=config["shard_size"],
    log:
        f"{OUT}/logs/prepare.log",
    benchmark:
        f"{OUT}/benchmarks/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/inputs.yaml"
    script:
        "../scripts/prepare.py"
