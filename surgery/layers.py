"""The project's import graph, read from the source (no imports run): layers, arrows and cycles.

Used by ``tests/test_layers.py`` (the arrows run cli → core ← passes, models, tools, and
there are no cycles) and ``benchmarks/layers.py`` (lines per layer for the closing note).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

# package prefix → folder in the repository (the setuptools package-dir mapping)
PACKAGE_DIRS: dict[str, str] = {
    "surgery.passes": "passes",
    "surgery.models": "models",
    "surgery.tools": "tools",
    "surgery.cli": "surgery/cli",
    "surgery": "surgery",
}


def layer_of(module: str) -> str:
    """``cli``, ``passes``, ``models``, ``tools`` or ``core``."""
    for prefix in ("surgery.cli", "surgery.passes", "surgery.models", "surgery.tools"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    return "core"


def iter_modules(root: str | Path) -> Iterator[tuple[str, Path]]:
    """(dotted module name, file) for every .py file of the installed packages."""
    root = Path(root)
    seen: set[Path] = set()
    for prefix, folder in PACKAGE_DIRS.items():
        for path in sorted((root / folder).rglob("*.py")):
            if path in seen:
                continue
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            # surgery/cli is walked as part of surgery/ too: keep the longest prefix
            if prefix == "surgery" and rel.parts and rel.parts[0] == "cli":
                continue
            seen.add(path)
            yield name, path


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its body (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module, is_package, node.level, node.module) if node.level else node.module
            if base is None:
                continue
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def import_graph(root: str | Path) -> dict[str, set[str]]:
    """module → the project modules it imports."""
    modules = dict(iter_modules(root))
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def _parent_packages(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a package's own
    ``__init__`` importing its submodules (a re-export, not a dependency)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def edges(v: str) -> set[str]:
        return {w for w in graph.get(v, ()) if v not in _parent_packages(w) and w not in _parent_packages(v)}

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# layer → the layers it may import
ALLOWED: dict[str, set[str]] = {
    "cli": {"cli", "core", "passes", "models", "tools"},
    "core": {"core"},
    "passes": {"passes", "core"},
    "models": {"models", "core"},
    "tools": {"tools", "core"},
}
# the public API's entry points hand the built-in registries to the core (DESIGN.md)
ENTRY_POINTS = {"surgery.api"}


def wrong_arrows(graph: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that run against the layering."""
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            if src in ENTRY_POINTS and layer_of(dst) in ("passes", "models", "tools"):
                continue
            if layer_of(dst) not in ALLOWED[layer_of(src)]:
                bad.append((src, dst))
    return bad


def lines_per_layer(root: str | Path) -> dict[str, int]:
    """Non-blank source lines per layer."""
    out: dict[str, int] = {}
    for name, path in iter_modules(root):
        n = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        out[layer_of(name)] = out.get(layer_of(name), 0) + n
    return out
