"""Write envs/*.yaml and envs/cu12/*.yaml: each rule's conda env with its Python packages pinned
exactly and locked.

Every env is conda's Python plus pip packages (and, for `evaluate`, conda-forge's `dssp` for
mkdssp). The direct dependencies below are pinned to the versions installed in the interpreter
running this script (run it from the venv the tests passed in); everything they need is locked with
`uv pip compile` for Linux x86_64 and the env's Python, so an env built next month holds the same
packages. Each env gets the torch build it needs (structure_tokens/envs.py):

- the GPU envs (`embed`, `evaluate`), in two variants chosen with the config key `cuda_variant`:
  `cu13` (envs/<env>.yaml): PyPI's Linux wheel, a CUDA 13.0 build, its CUDA libraries locked with it;
  `cu12` (envs/cu12/<env>.yaml): the CUDA 12.6 build from PyTorch's index (an `--extra-index-url`
  line in the env's pip section);
- the CPU envs that use torch (`codebook`, `tokenize`): the CPU build from PyTorch's index, without
  the ~2.6 GB of CUDA wheels.

Where PyTorch's index can be reached, those envs are locked against it and PyPI. Where it cannot
(the machines this project is developed and tested on reach PyPI only), they are locked against
PyPI's torch of the same version, whose requirements are the same plus its CUDA 13 packages
(nvidia-*, cuda-*, triton), which are left out. For the CPU build that is its exact lock (its wheel
requires the same packages less the CUDA ones); for the CUDA 12.6 build, its CUDA 12 libraries and
triton are then not listed: pip installs them as the torch wheel's own requirements pin them. The
header of each env file says which case it is.

    pip install uv && python tools/lock_envs.py          # rewrite every env file
    python tools/lock_envs.py --check                    # fail if a file is out of date

`tests/test_envs.py` checks that each env's direct dependencies are exactly what its rules'
scripts import, and that every file, in both variants, is what this script writes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from structure_tokens.envs import CPU_TORCH_ENVS, CPU_TORCH_INDEX, GPU_ENVS, VARIANTS  # noqa: E402

PYTHON = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
DIRECT_MARKER = "# direct dependencies"
LOCKED_MARKER = "# what they need, locked"
CUDA_PACKAGES = re.compile(r"nvidia-.*|cuda-.*|triton")  # what PyPI's torch needs for CUDA only

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


@dataclass(frozen=True)
class TorchBuild:
    """The torch of one env file: PyPI's wheel, or a build from one of PyTorch's indexes."""

    description: str  # for the file's header
    tag: str | None = None  # local version, e.g. "cu126" for torch==2.13.0+cu126
    index: str | None = None  # PyTorch's pip index of that build


PYPI_CUDA = TorchBuild(f"PyPI's Linux wheel, a CUDA {VARIANTS['cu13'].cuda} build (`cu13` variant)")
CPU = TorchBuild("the CPU build (no CUDA libraries)", "cpu", CPU_TORCH_INDEX)


def env_files() -> dict[Path, tuple[str, TorchBuild | None]]:
    """Every env file this script writes: its path, its env and its torch build (None: no torch)."""
    files = {}
    for name in ENVS:
        if name in GPU_ENVS:
            for variant in VARIANTS.values():
                build = (TorchBuild(f"the CUDA {variant.cuda} build (`{variant.name}` variant)", variant.torch_tag,
                                    variant.index) if variant.index else PYPI_CUDA)
                files[REPO / variant.folder / f"{name}.yaml"] = (name, build)
        else:
            files[REPO / "envs" / f"{name}.yaml"] = (name, CPU if name in CPU_TORCH_ENVS else None)
    return files


def pinned(package: str) -> str:
    """``package==version`` of the version installed here (without a local tag such as ``+cpu``)."""
    return f"{package}=={version(package).split('+')[0]}"


def lock(direct: list[str], index: str | None = None) -> list[str]:
    """Every package ``direct`` needs, exactly pinned, as ``uv pip compile`` resolves them from PyPI
    (and ``index``, taking the best version of each package from either)."""
    with tempfile.NamedTemporaryFile("w", suffix=".in") as requirements:
        requirements.write("\n".join(direct) + "\n")
        requirements.flush()
        extra = ["--extra-index-url", index, "--index-strategy", "unsafe-best-match"] if index else []
        result = subprocess.run(["uv", "pip", "compile", requirements.name, "--python-version", PYTHON,
                                 "--python-platform", PLATFORM, "--no-header", "--no-annotate", "--quiet", *extra],
                                capture_output=True, text=True, check=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]


@cache
def reachable(index: str) -> bool:
    """Whether PyTorch's pip index ``index`` answers from here."""
    try:
        with urllib.request.urlopen(f"{index}/torch/", timeout=20):
            return True
    except OSError:
        return False


def name_of(requirement: str) -> str:
    return requirement.split("==")[0].lower()


def locked_requirements(direct: list[str], build: TorchBuild | None) -> tuple[list[str], list[str]]:
    """What ``direct`` needs, locked, and the header lines saying how it was locked."""
    if build is None or build.index is None:
        how = [] if build is None else [f"# torch: {build.description}; its CUDA libraries are locked with it."]
        return lock(direct), how
    source = f"# torch: {build.description}, from {build.index}."
    if reachable(build.index):
        return lock(direct, build.index), [source, "# Everything locked against PyPI and that index."]
    from_pypi = [line.split("+")[0] if name_of(line) == "torch" else line for line in direct]
    locked = [line for line in lock(from_pypi) if not CUDA_PACKAGES.fullmatch(name_of(line))]
    how = [source, "# That index could not be reached when this was locked: locked against PyPI's torch of the",
           "# same version, less its CUDA 13 packages (nvidia-*, cuda-*, triton)."]
    if build.tag != "cpu":
        how.append("# torch's CUDA 12 libraries and triton are not listed: pip installs them as the torch wheel "
                   "pins them.")
    return locked, how


def env_file(path: Path) -> str:
    """The text of the env file at ``path``."""
    name, build = env_files()[path]
    purpose, conda, packages = ENVS[name]
    tag = f"+{build.tag}" if build and build.tag else ""
    direct = sorted(pinned(package) + (tag if package == "torch" else "") for package in packages)
    locked, how = locked_requirements(direct, build)
    names = {name_of(line) for line in direct}
    locked = [line for line in locked if name_of(line) not in names]
    lines = [f"# {purpose}",
             "# Written by tools/lock_envs.py (edit it there): direct dependencies at the tested versions,",
             f"# the rest locked by `uv pip compile` for Linux x86_64, Python {PYTHON}.",
             *how,
             "channels: [conda-forge, nodefaults]",
             "dependencies:",
             f"  - python={PYTHON}",
             *(f"  - {package}" for package in conda),
             "  - pip",
             "  - pip:",
             *([f"      - --extra-index-url {build.index}"] if build and build.index else []),
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
    for path in env_files():
        text = env_file(path)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'out of date' if args.check else 'written'}: {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
