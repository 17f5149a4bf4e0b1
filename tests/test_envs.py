"""Each rule's conda env provides exactly what its script imports, pinned exactly, in every variant:
the GPU envs for CUDA 13 (envs/) and CUDA 12 (envs/cu12/), the CPU envs with torch's CPU build.

The imports are followed statically from every rule's script through the package: module-level
imports always, imports inside a function when that function's name is used by code that runs.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import REPO, rule_blocks
from structure_tokens.envs import CPU_TORCH_ENVS, CPU_TORCH_INDEX, DEFAULT_VARIANT, GPU_ENVS, VARIANTS, env_file

PACKAGE = "structure_tokens"
# import name -> PyPI distribution (the env files install Python packages with pip)
DISTRIBUTIONS = {"Bio": "biopython", "datasets": "datasets", "esm": "fair-esm", "faiss": "faiss-cpu",
                 "h5py": "h5py",
                 "matplotlib": "matplotlib", "mini3di": "mini3di", "numpy": "numpy", "pandas": "pandas",
                 "pyarrow": "pyarrow", "sklearn": "scikit-learn", "threadpoolctl": "threadpoolctl", "torch": "torch",
                 "yaml": "pyyaml"}
# conda packages besides Python and pip -> a program the code runs, which must be named in the package
PROGRAMS = {"dssp": "mkdssp"}


def module_path(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def package_modules(name: str) -> list[Path]:
    """The files Python runs for ``import name``: every package on the way, then the module."""
    parts = name.split(".")
    return [path for path in (module_path(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if path]


@cache
def scopes(path: Path) -> dict[str | None, tuple[set[str], set[str]]]:
    """Imports and identifiers per scope of a file: ``None`` for code that runs on import, else the
    name of the function (or method) they are in."""
    found: dict[str | None, tuple[set[str], set[str]]] = {}

    def visit(node: ast.AST, scope: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(child.name, (set(), set()))
                visit(child, child.name)
                continue
            imports, names = found.setdefault(scope, (set(), set()))
            if isinstance(child, ast.Import):
                imports.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                imports.update([child.module] + [f"{child.module}.{alias.name}" for alias in child.names])
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.Name):
                names.add(child.id)
            elif isinstance(child, ast.Attribute):
                names.add(child.attr)
            visit(child, scope)

    visit(ast.parse(path.read_text()), None)
    return found


def reachable(script: Path) -> tuple[set[Path], set[str]]:
    """The package files a script can run and the top-level third-party modules they import."""
    files: set[Path] = set()
    active: set[tuple[Path, str | None]] = set()
    used: set[str] = set()
    external: set[str] = set()
    pending = [script]
    changed = True
    while changed:  # until no new file is imported and no new function is used
        changed = bool(pending)
        files.update(pending)
        pending = []
        for path in sorted(files):
            for scope, (imports, names) in scopes(path).items():
                runs = scope is None or scope in used or scope.startswith("__")
                if not runs or (path, scope) in active:
                    continue
                active.add((path, scope))
                changed = True
                used |= names
                for name in imports:
                    top = name.split(".")[0]
                    if top == PACKAGE:
                        pending += [p for p in package_modules(name) if p not in files]
                    elif top not in sys.stdlib_module_names and top != "__future__":
                        external.add(top)
    return files, external


def rules() -> dict[str, dict[str, str]]:
    """``{rule: {"script": path, "conda": env name}}`` from rules/*.smk (``conda_env("embed")``: a GPU env,
    in the variant the config chooses)."""
    found: dict[str, dict[str, str]] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            match = re.match(r"\s*(?:rule|checkpoint) (\w+):", line)
            if match:
                rule = match.group(1)
                found[rule] = {}
            elif rule and line.strip() == "script:":
                found[rule]["script"] = str((smk.parent / lines[i + 1].strip().strip('",')).resolve())
            elif rule and line.strip() == "conda:":
                value = lines[i + 1].strip()
                gpu_env = re.fullmatch(r'conda_env\("(\w+)"\)', value)
                assert gpu_env is None or gpu_env.group(1) in GPU_ENVS, f"{rule}: conda_env() is for GPU envs"
                found[rule]["conda"] = gpu_env.group(1) if gpu_env else Path(value.strip('",')).stem
    return found


def env_packages(env: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(conda packages, pip options, direct pip requirements, locked pip requirements)`` of an env file."""
    spec = yaml.safe_load(env.read_text())
    conda = [d for d in spec["dependencies"] if isinstance(d, str)]
    text = env.read_text()
    direct_block = text.split("# direct dependencies\n", 1)[1].split("# what they need, locked\n", 1)[0]
    direct = re.findall(r"^\s*- (\S+)$", direct_block, flags=re.M)
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    options = [p for p in pip if p.startswith("--")]
    return conda, options, direct, [p for p in pip if p not in direct and p not in options]


def names(requirements: list[str]) -> set[str]:
    return {requirement.split("==")[0].lower() for requirement in requirements}


RULES = rules()
ENVS = sorted({spec["conda"] for spec in RULES.values()})
# every env file: the GPU envs once per variant
ENV_FILES = sorted({env_file(str(REPO), name, variant) for name in ENVS for variant in VARIANTS})
CUDA_13 = re.compile(r"nvidia-.*|cuda-.*|triton")
lock_envs_spec = importlib.util.spec_from_file_location("lock_envs", REPO / "tools/lock_envs.py")
lock_envs = sys.modules["lock_envs"] = importlib.util.module_from_spec(lock_envs_spec)
lock_envs_spec.loader.exec_module(lock_envs)


def env_of(path: str) -> str:
    return Path(path).stem


def test_every_rule_has_a_script_and_an_env():
    assert {"prepare", "embed", "embed_tokenize", "train_codebook", "tokenize", "llm_outputs", "report",
            "evaluate_structures"} <= set(RULES)
    for rule, spec in RULES.items():
        assert set(spec) == {"script", "conda"}, rule
        assert Path(spec["script"]).is_file(), rule
    assert all(Path(path).is_file() for path in ENV_FILES)
    on_disk = sorted(str(p) for p in (REPO / "envs").glob("**/*.yaml"))
    assert on_disk == ENV_FILES == sorted(str(path) for path in lock_envs.env_files())  # none unused or unwritten
    assert set(GPU_ENVS) == {RULES[rule]["conda"] for rule in ("embed", "embed_tokenize", "evaluate_structures")}


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: str(Path(p).relative_to(REPO / "envs")))
def test_env_provides_exactly_what_its_rules_import(env):
    users = [rule for rule, spec in RULES.items() if spec["conda"] == env_of(env)]
    needed, files = {}, set()
    for rule in users:
        rule_files, external = reachable(Path(RULES[rule]["script"]))
        files |= rule_files
        for module in external:
            assert module in DISTRIBUTIONS, f"{rule} imports {module}: add it to DISTRIBUTIONS"
            needed.setdefault(DISTRIBUTIONS[module], []).append(rule)
    conda, _, direct, _ = env_packages(Path(env))
    provided = names(direct)
    missing = {package: rules for package, rules in needed.items() if package not in provided}
    assert not missing, f"{env} lacks packages its rules import: {missing}"
    assert provided <= set(needed), f"{env} lists packages none of {users} imports: {sorted(provided - set(needed))}"
    code = "".join(path.read_text() for path in files)
    for package in (c.split("=")[0] for c in conda):
        if package not in ("python", "pip"):
            assert package in PROGRAMS and PROGRAMS[package] in code, f"{env}: nothing in {users} uses {package}"


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: str(Path(p).relative_to(REPO / "envs")))
def test_env_pins_every_package_exactly(env):
    conda, _, direct, locked = env_packages(Path(env))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][\w.]*(\+(cpu|cu\d+))?", line) for line in direct + locked)
    assert "python=3.11" in conda
    listed = [requirement.split("==")[0].lower() for requirement in direct + locked]
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize("name", GPU_ENVS)
def test_gpu_envs_come_in_a_cuda_13_and_a_cuda_12_variant(name):
    """cu13: PyPI's torch and its CUDA 13 libraries; cu12: the same packages, but torch's CUDA 12.6 build
    from PyTorch's index and none of the CUDA 13 ones."""
    _, options13, direct13, locked13 = env_packages(Path(env_file(str(REPO), name, "cu13")))
    _, options12, direct12, locked12 = env_packages(Path(env_file(str(REPO), name, "cu12")))
    torch = next(line for line in direct13 if line.startswith("torch=="))
    assert "+" not in torch and not options13 and "nvidia-cuda-runtime" in names(locked13)
    assert direct12 == [f"{torch}+cu126" if line == torch else line for line in direct13]
    assert options12 == [f"--extra-index-url {VARIANTS['cu12'].index}"]
    assert VARIANTS["cu12"].index == "https://download.pytorch.org/whl/cu126"
    assert not any(CUDA_13.fullmatch(package) for package in names(locked12))
    assert sorted(locked12) == sorted(line for line in locked13 if not CUDA_13.fullmatch(line.split("==")[0]))


@pytest.mark.parametrize("name", CPU_TORCH_ENVS)
def test_cpu_envs_get_torch_without_cuda(name):
    _, options, direct, locked = env_packages(Path(env_file(str(REPO), name)))
    assert options == [f"--extra-index-url {CPU_TORCH_INDEX}"]
    assert any(re.fullmatch(r"torch==[\d.]+\+cpu", line) for line in direct)
    assert not any(CUDA_13.fullmatch(package) for package in names(direct + locked))
    blocks = rule_blocks()
    for rule in (rule for rule, spec in RULES.items() if spec["conda"] == name):
        assert "GPU_JOB" not in blocks[rule], f"{rule} asks for a GPU but its env {name} has torch's CPU build"


def test_only_the_gpu_envs_carry_cuda():
    for path in ENV_FILES:
        _, _, direct, locked = env_packages(Path(path))
        has_cuda = any(CUDA_13.fullmatch(package) for package in names(locked)) or "+cu" in " ".join(direct)
        assert has_cuda == (env_of(path) in GPU_ENVS), path


def test_lock_envs_writes_every_file_of_both_variants(monkeypatch):
    """tools/lock_envs.py renders each file from its pins and lock (here: those of the files, and
    PyTorch's index unreachable, as on the machines that locked them)."""
    files = {path: env_packages(path) for path in lock_envs.env_files()}
    versions = {line.split("==")[0]: line.split("==")[1].split("+")[0] for _, _, direct, _ in files.values()
                for line in direct}
    pypi_locks = {}  # PyPI's resolution of each set of direct pins: the longest recorded (with CUDA 13)
    for _, _, direct, locked in files.values():
        pins = frozenset(line.split("+")[0] for line in direct)
        pypi_locks[pins] = max(pypi_locks.get(pins, []), sorted(pins) + locked, key=len)

    def lock(direct, index=None):
        assert index is None
        return pypi_locks[frozenset(direct)]

    monkeypatch.setattr(lock_envs, "pinned", lambda package: f"{package}=={versions[package]}")
    monkeypatch.setattr(lock_envs, "lock", lock)
    monkeypatch.setattr(lock_envs, "reachable", lambda index: False)
    for path in files:
        assert lock_envs.env_file(path) == path.read_text(), path


def test_the_config_key_selects_the_variant(tmp_path):
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())["properties"]["cuda_variant"]
    assert schema["enum"] == list(VARIANTS) and schema["default"] == DEFAULT_VARIANT
    assert yaml.safe_load((REPO / "config/config.yaml").read_text())["cuda_variant"] == DEFAULT_VARIANT
    for variant in VARIANTS:
        envs = workflow_envs(tmp_path, variant)
        assert envs["embed"] == envs.get("embed_tokenize", envs["embed"]) == env_file(str(REPO), "embed", variant)
        assert envs["evaluate_structures"] == env_file(str(REPO), "evaluate", variant)
        assert envs["llm_outputs"] == "../envs/tokenize.yaml"  # one variant for the CPU envs


def test_readme_variant_table_matches_the_variants():
    readme = (REPO / "docs/slurm.md").read_text()
    for variant in VARIANTS.values():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{variant.name}`"))
        assert f"`{variant.folder}/embed.yaml`" in row and f"{variant.min_driver} or newer" in row, row
        assert f"CUDA {variant.cuda}" in row and f"compute capability {variant.architectures[0] / 10:.1f}" in row, row


def workflow_envs(workdir: Path, variant: str) -> dict[str, str]:
    """The env file of each rule as Snakemake parses the workflow with ``cuda_variant: variant``."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=REPO / "Snakefile", workdir=workdir,
                                config_settings=ConfigSettings(config={"cuda_variant": variant,
                                                                       "keep_embeddings": variant == "cu12"}))
        return {rule.name: rule.conda_env for rule in workflow._workflow.rules}  # no public accessor


def test_import_walk_follows_lazy_imports_only_into_used_functions():
    _, prepare = reachable(REPO / "scripts/prepare.py")
    assert {"Bio", "datasets", "pyarrow"} <= prepare  # lazy imports of the readers it calls
    _, embed = reachable(REPO / "scripts/embed.py")
    assert "Bio" not in embed and "torch" in embed
