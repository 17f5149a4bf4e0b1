EVALUATION = config["evaluation"]


rule heldout_metrics:
    """Codebook quality on held-out proteins: usage, error, information about the amino acid, seed stability."""
    input:
        embeddings=per_shard(f"{OUT}/embeddings/{SHARD}.h5", embedded_shard_ids),
        shards=per_shard(f"{OUT}/prepared/shards/{SHARD}.tsv", embedded_shard_ids),
        train_embeddings=per_shard(f"{OUT}/embeddings/{SHARD}.h5", train_shard_ids),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        json=f"{OUT}/evaluation/heldout_metrics_K{K}.json",
        tsv=f"{OUT}/evaluation/heldout_metrics_K{K}.tsv",
        html=report(
            f"{OUT}/evaluation/heldout_metrics_K{K}.html",
            caption="../docs/report/heldout_metrics.rst",
            category="1. Codebook",
            labels={"figure": "held-out codebook metrics"},
        ),
    log:
        f"{OUT}/logs/heldout_metrics.log",
    benchmark:
        f"{OUT}/job_benchmarks/heldout_metrics.tsv"
    conda:
        conda_env("evaluate")
    threads: 4
    resources:
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        codebook=config["codebook"],
        seed_stability=EVALUATION["seed_stability"],
    script:
        "../scripts/heldout_metrics.py"


rule evaluate_structures:
    """Agreement of the tokens of PDB/mmCIF chains with their secondary structure, RSA, contacts; with baselines."""
    input:
        structures=EVALUATION["structures"] or [],
        checkpoint=model_checkpoint(),
        codebook=f"{OUT}/codebook/codebook_K{K}.npz",
    output:
        tsv=f"{OUT}/evaluation/structures/agreement_K{K}.tsv",
        html=report(
            f"{OUT}/evaluation/structures/agreement_K{K}.html",
            caption="../docs/report/structure_agreement.rst",
            category="2. Structure agreement",
            labels={"figure": "agreement with structure labels"},
        ),
        json=f"{OUT}/evaluation/structures/agreement_K{K}.json",
        tracks=report(
            f"{OUT}/evaluation/structures/token_tracks_K{K}.png",
            caption="../docs/report/token_tracks.rst",
            category="2. Structure agreement",
            labels={"figure": "token tracks"},
        ),
        three_di=report(
            f"{OUT}/evaluation/structures/token_3di_K{K}.png",
            caption="../docs/report/token_3di.rst",
            category="2. Structure agreement",
            labels={"figure": "3Di states per ESM token"},
        ),
    log:
        f"{OUT}/logs/evaluate_structures.log",
    benchmark:
        f"{OUT}/job_benchmarks/evaluate_structures.tsv"
    conda:
        conda_env("evaluate")
    threads: 4
    resources:
        **GPU_JOB,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        model=config["model"],
        evaluation=EVALUATION,
        seed=config["codebook"]["seed"],
    script:
        "../scripts/evaluate_structures.py"
