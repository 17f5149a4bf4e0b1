"""Each rule's conda env provides exactly what its script imports, pinned exactly.

The imports are followed statically from every rule's script through the package: module-level
imports always, imports inside a function when that function's name is used by code that runs.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import REPO

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
    """``{rule: {"script": path, "conda": path}}`` from rules/*.smk."""
    found: dict[str, dict[str, str]] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            match = re.match(r"\s*(?:rule|checkpoint) (\w+):", line)
            if match:
                rule = match.group(1)
                found[rule] = {}
            elif rule and line.strip() in ("script:", "conda:"):
                value = lines[i + 1].strip().strip('",')
                found[rule][line.strip()[:-1]] = str((smk.parent / value).resolve())
    return found


def env_packages(env: Path) -> tuple[list[str], list[str], list[str]]:
    """``(conda packages, direct pip requirements, locked pip requirements)`` of an env file."""
    spec = yaml.safe_load(env.read_text())
    conda = [d for d in spec["dependencies"] if isinstance(d, str)]
    text = env.read_text()
    direct_block = text.split("# direct dependencies\n", 1)[1].split("# what they need, locked\n", 1)[0]
    direct = re.findall(r"^\s*- (\S+)$", direct_block, flags=re.M)
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    return conda, direct, [p for p in pip if p not in direct]


RULES = rules()
ENV_FILES = sorted({spec["conda"] for spec in RULES.values()})


def test_every_rule_has_a_script_and_an_env():
    assert {"prepare", "embed", "embed_tokenize", "train_codebook", "tokenize", "llm_outputs", "report",
            "evaluate_structures"} <= set(RULES)
    for rule, spec in RULES.items():
        assert set(spec) == {"script", "conda"}, rule
        assert Path(spec["script"]).is_file() and Path(spec["conda"]).is_file(), rule
    assert sorted(str(p) for p in (REPO / "envs").glob("*.yaml")) == ENV_FILES  # no unused env file


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: Path(p).stem)
def test_env_provides_exactly_what_its_rules_import(env):
    users = [rule for rule, spec in RULES.items() if spec["conda"] == env]
    needed, files = {}, set()
    for rule in users:
        rule_files, external = reachable(Path(RULES[rule]["script"]))
        files |= rule_files
        for module in external:
            assert module in DISTRIBUTIONS, f"{rule} imports {module}: add it to DISTRIBUTIONS"
            needed.setdefault(DISTRIBUTIONS[module], []).append(rule)
    conda, direct, _ = env_packages(Path(env))
    provided = {requirement.split("==")[0].lower() for requirement in direct}
    missing = {package: rules for package, rules in needed.items() if package not in provided}
    assert not missing, f"{env} lacks packages its rules import: {missing}"
    assert provided <= set(needed), f"{env} lists packages none of {users} imports: {sorted(provided - set(needed))}"
    code = "".join(path.read_text() for path in files)
    for package in (c.split("=")[0] for c in conda):
        if package not in ("python", "pip"):
            assert package in PROGRAMS and PROGRAMS[package] in code, f"{env}: nothing in {users} uses {package}"


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: Path(p).stem)
def test_env_pins_every_package_exactly(env):
    conda, direct, locked = env_packages(Path(env))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][\w.]*", requirement) for requirement in direct + locked)
    assert "python=3.11" in conda
    names = [requirement.split("==")[0].lower() for requirement in direct + locked]
    assert len(names) == len(set(names))
    if "torch" in names:  # the CUDA libraries of PyPI's Linux torch wheel are locked with it
        assert any(name.startswith("nvidia-cuda-runtime") for name in names)


def test_import_walk_follows_lazy_imports_only_into_used_functions():
    _, prepare = reachable(REPO / "scripts/prepare.py")
    assert {"Bio", "datasets", "pyarrow"} <= prepare  # lazy imports of the readers it calls
    _, embed = reachable(REPO / "scripts/embed.py")
    assert "Bio" not in embed and "torch" in embed
