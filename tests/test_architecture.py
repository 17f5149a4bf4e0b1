"""The house plan: file formats at the bottom, each stage importing only what lies below it.

See docs/DESIGN.md ("Layers"). The check reads every module's imports (lazy ones inside
functions included) with ``ast``, so it needs no heavy package to be importable.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "structure_tokens"
# Layer of every top-level part of the package, bottom first. A module may import modules of its
# own layer or of a lower one, never of a higher one.
LAYERS = {
    "structure_tokens": 0,  # the package's __init__ (version)
    "formats": 0,
    "options": 0,
    "data": 0,  # the embedded demo proteins (package data)
    "workflow_logging": 0,
    "workflow_lock": 0,  # one run per output folder
    "threads": 0,
    "envs": 0,  # the conda env variants of the GPU rules (cuda_variant)
    "slurm": 0,  # the GPU rules' SLURM request, from the site's environment variables
    "inputs": 1,
    "embed": 2,
    "codebook": 3,
    "tokenize": 4,
    "llm": 5,
    "evaluation": 6,
    "report": 7,
    "api": 8,
    "config": 8,  # the workflow's start-up config checks: every stage's options
    "cli": 9,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    assert part in LAYERS, f"{module}: add its part {part!r} to LAYERS (and to docs/DESIGN.md)"
    return LAYERS[part]


def imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports (``from a.b import c`` counts a.b.c when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    found.discard(module)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        layer_of(module)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
            for module, targets in graph.items() for target in sorted(targets)
            if layer_of(target) > layer_of(module)]


def test_imports_only_go_downward():
    upward = upward_imports(GRAPH)
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_formats_import_only_the_floor():
    floor = {part for part, layer in LAYERS.items() if layer == 0}
    for module, targets in GRAPH.items():
        if module.startswith("structure_tokens.formats"):
            for target in targets:
                assert target.split(".")[1] in floor, f"{module} imports {target}, above the formats layer"


def test_no_import_cycles():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])


def test_layer_check_finds_an_upward_import():
    """The check itself, on the kind of arrow the redesign removed (a metric reaching into tokenize)."""
    graph = {"structure_tokens.codebook.metrics": {"structure_tokens.tokenize.from_embeddings"},
             "structure_tokens.tokenize.from_embeddings": {"structure_tokens.formats.tokens"}}
    assert upward_imports(graph) == ["structure_tokens.codebook.metrics (layer 3) imports "
                                     "structure_tokens.tokenize.from_embeddings (layer 4)"]


def test_heldout_metrics_load_no_plotting_or_structure_parsing():
    """`evaluation.heldout` computes; it must not pull in matplotlib or Bio.PDB."""
    code = ("import sys, structure_tokens.evaluation.heldout; "
            "print(sorted(m for m in ('matplotlib', 'Bio.PDB') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


def test_config_checks_are_light_to_import():
    """The Snakefile builds every section's options at start: no torch, pandas, pyarrow, scikit-learn."""
    heavy = ("torch", "pandas", "pyarrow", "sklearn", "matplotlib", "Bio", "esm", "scipy")
    code = (f"import sys, structure_tokens.config; print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "rules"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
