"""The package's layers are its folders, and imports only point down.

    kernels (0) < linalg (1) < engine (2) < experiments (3) < scoring (4) < cli (5)

A module may import its own layer and the layers below; ``rankbias.kernels``
imports nothing of rankbias; nothing outside ``rankbias.cli`` imports the CLI;
the imports between rankbias's modules (lazy ones inside functions included)
form no cycle.  Outside ``kernels/`` (straight-line numerics, whose docstrings
carry the algorithm) no module runs over 400 lines and no function over 60.
Every import statement is read with ``ast``, so a planted upward import fails
(``test_the_checker_catches_a_planted_upward_import``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src"
LAYERS = ("kernels", "linalg", "engine", "experiments", "scoring", "cli")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60
# the package root (``__version__``, the public spectral API) and the stable
# ``rankbias.hypotheses`` import path of hypothesis files sit above no layer
ROOT_MODULES = {"rankbias": None, "rankbias.hypotheses": None}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """The layer of a rankbias module (None for the root modules)."""
    if module in ROOT_MODULES:
        return None
    return LAYERS.index(module.split(".")[1])


def imported(source: str, module: str, is_package: bool) -> set[str]:
    """The rankbias modules ``source`` imports (absolute or relative, anywhere in the file)."""
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "rankbias"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "rankbias":
                continue
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}  # ``from rankbias.engine import data``
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imported(path.read_text(), name, path.name == "__init__.py") if m in known} - {name}
            for name, path in known.items()}


def offences(edges: dict[str, set[str]]) -> list[str]:
    """Every import that runs up a layer, leaves the kernels or reaches the CLI from outside."""
    bad = []
    for src, targets in edges.items():
        here = layer_of(src)
        for dst in sorted(targets):
            there = layer_of(dst)
            if src.startswith("rankbias.kernels") and not dst.startswith("rankbias.kernels"):
                bad.append(f"{src} -> {dst}: the kernels import nothing of rankbias")
            elif dst.startswith("rankbias.cli") and not src.startswith("rankbias.cli"):
                bad.append(f"{src} -> {dst}: nothing imports the CLI")
            elif here is not None and there is not None and there > here:
                bad.append(f"{src} -> {dst}: {LAYERS[here]} imports {LAYERS[there]}, a layer above it")
            elif here is not None and there is None and dst != "rankbias":
                bad.append(f"{src} -> {dst}: import rankbias.scoring.hypotheses, not the compatibility path")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among modules; a package importing its own submodules is not one."""
    def real(a: str, b: str) -> bool:
        return not b.startswith(a + ".") and not a.startswith(b + ".")

    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if not real(node, nxt):
                continue
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


def test_the_top_level_folders_are_the_layers():
    folders = {p.name for p in (SRC / "rankbias").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)
    assert {module_name(p) for p in (SRC / "rankbias").glob("*.py")} == set(ROOT_MODULES)


def test_imports_point_down_the_layers():
    assert offences(graph()) == []


def test_the_checker_catches_a_planted_upward_import():
    edges = graph()
    planted = {**edges, "rankbias.engine.nets": edges["rankbias.engine.nets"] | {"rankbias.experiments.store"}}
    assert offences(planted) == ["rankbias.engine.nets -> rankbias.experiments.store: "
                                 "engine imports experiments, a layer above it"]
    source = "def f():\n    from rankbias.scoring import score\n"  # a lazy import counts as much as one at the top
    assert imported(source, "rankbias.linalg.spectral", False) == {"rankbias.scoring", "rankbias.scoring.score"}
    assert offences({"rankbias.kernels.rank_cpu": {"rankbias.linalg.inputs"}})
    assert offences({"rankbias.scoring.score": {"rankbias.cli.app"}})


def test_relative_imports_resolve_to_their_modules():
    assert imported("from .qr_cpu import orthonormalize\n", "rankbias.kernels.rsvd_cpu", False) == {
        "rankbias.kernels.qr_cpu", "rankbias.kernels.qr_cpu.orthonormalize"}
    assert imported("from . import launch\n", "rankbias.linalg.cuda", True) == {
        "rankbias.linalg.cuda", "rankbias.linalg.cuda.launch"}


def test_no_import_cycle():
    assert cycles(graph()) == []
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.x"}}) == [["a.x", "a.y", "a.x"]]


def oversized() -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES, outside kernels/."""
    out = []
    for name, path in modules().items():
        if name.startswith("rankbias.kernels"):
            continue
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            out.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{name}.{node.name}: {length} lines (line {node.lineno})")
    return out


def test_no_module_or_function_runs_too_long():
    assert oversized() == []
