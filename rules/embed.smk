if weights_to_download():

    rule fetch_model:
        """Download the fair-esm weights once, on the submit host, so compute jobs never download.

        Defined only while the hub weights are missing: weights the user supplies (`model.checkpoint`)
        and a finished download are plain input files, never a rule's output, so no rerun trigger
        (changed code, an old file date) can delete or re-make them.
        """
        output:
            model_checkpoint(),
        log:
            f"{OUT}/logs/fetch_model.log",
        localrule: True  # in the rule, not `localrules:`, so that it holds under a module prefix too
        conda:
            conda_env("embed")
        params:
            name=config["model"]["name"],
        script:
            "../scripts/fetch_model.py"


rule embed:
    """Per-residue ESM-2 embeddings of one shard (float16 HDF5), resumable within the shard."""
    input:
        shard=f"{OUT}/prepared/shards/{SHARD}.tsv",
        checkpoint=model_checkpoint(),
    output:
        embeddings=embeddings_output(f"{OUT}/embeddings/{SHARD}.h5"),
        throughput=f"{OUT}/job_benchmarks/embed/{SHARD}.json",
    log:
        f"{OUT}/logs/embed/{SHARD}.log",
    benchmark:
        f"{OUT}/job_benchmarks/embed/{SHARD}.tsv"
    conda:
        conda_env("embed")
    threads: 4
    resources:
        **GPU_JOB,
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        model=config["model"],
    script:
        "../scripts/embed.py"
