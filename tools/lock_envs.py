"""Write envs/*.yaml: each rule's conda env with its Python packages pinned exactly and locked.

Every env is conda's Python plus pip packages from PyPI (and, for `evaluate`, conda-forge's
`dssp` for mkdssp). The direct dependencies below are pinned to the versions installed in the
interpreter running this script (run it from the venv the tests passed in); everything they need
is locked with `uv pip compile` for Linux x86_64 and the env's Python, so an env built next
month holds the same packages. PyPI's Linux `torch` wheels are CUDA builds that also run on a
CPU, so GPU jobs get CUDA whether or not the env was created on a node with a GPU.

    pip install uv && python tools/lock_envs.py          # rewrite every env file
    python tools/lock_envs.py --check                    # fail if a file is out of date

`tests/test_envs.py` checks that each env's direct dependencies are exactly what its rules'
scripts import.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
DIRECT_MARKER = "# direct dependencies"
LOCKED_MARKER = "# what they need, locked"

# env name -> (the rules it serves and what for, conda packages besides Python and pip, pip packages)
ENVS = {
    "inputs": ("rule prepare: read FASTA / UniProt / ProteinLMBench, validate, de-duplicate, shard",
               [], ["biopython", "datasets", "pyarrow", "threadpoolctl"]),
    "embed": ("rules fetch_model, embed, embed_tokenize: ESM-2 embeddings and one-pass tokens on GPU",
              [], ["fair-esm", "h5py", "numpy", "threadpoolctl", "torch"]),
    "codebook": ("rules train_codebook, codebook_summary: k-means codebook on a bounded residue sample",
                 [], ["faiss-cpu", "h5py", "numpy", "scikit-learn", "threadpoolctl", "torch"]),
    "tokenize": ("rules tokenize, llm_outputs, finetune_data: nearest-centroid tokens, LLM outputs, SFT data",
                 [], ["h5py", "numpy", "pyarrow", "threadpoolctl", "torch"]),
    "evaluate": ("rules heldout_metrics, evaluate_structures: held-out metrics, agreement with PDB/mmCIF "
                 "structures (mkdssp from dssp)",
                 ["dssp=4.4"], ["biopython", "fair-esm", "faiss-cpu", "h5py", "matplotlib", "mini3di", "numpy",
                                "pandas", "scikit-learn", "threadpoolctl", "torch"]),
    "report": ("rule report: figures, run summary page and summary.md", [],
               ["h5py", "matplotlib", "numpy", "pandas", "scikit-learn", "threadpoolctl"]),
}


def pinned(package: str) -> str:
    """``package==version`` of the version installed here (without a local tag such as ``+cpu``)."""
    return f"{package}=={version(package).split('+')[0]}"


def lock(direct: list[str]) -> list[str]:
    """Every package ``direct`` needs, exactly pinned, as ``uv pip compile`` resolves them."""
    with tempfile.NamedTemporaryFile("w", suffix=".in") as requirements:
        requirements.write("\n".join(direct) + "\n")
        requirements.flush()
        result = subprocess.run(["uv", "pip", "compile", requirements.name, "--python-version", PYTHON,
                                 "--python-platform", PLATFORM, "--no-header", "--no-annotate", "--quiet"],
                                capture_output=True, text=True, check=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]


def env_file(name: str) -> str:
    """The text of ``envs/<name>.yaml``."""
    purpose, conda, packages = ENVS[name]
    direct = sorted(pinned(package) for package in packages)
    names = {line.split("==")[0].lower() for line in direct}
    locked = [line for line in lock(direct) if line.split("==")[0].lower() not in names]
    lines = [f"# {purpose}",
             "# Written by tools/lock_envs.py (edit it there): direct dependencies at the tested versions,",
             f"# the rest locked by `uv pip compile` for Linux x86_64, Python {PYTHON}.",
             "channels: [conda-forge, nodefaults]",
             "dependencies:",
             f"  - python={PYTHON}",
             *(f"  - {package}" for package in conda),
             "  - pip",
             "  - pip:",
             f"      {DIRECT_MARKER}",
             *(f"      - {line}" for line in direct),
             f"      {LOCKED_MARKER}",
             *(f"      - {line}" for line in locked)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report env files that differ")
    args = parser.parse_args()
    stale = []
    for name in ENVS:
        path = REPO / "envs" / f"{name}.yaml"
        text = env_file(name)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        print(f"{'out of date' if args.check else 'written'}: {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
