"""The import graph: arrows run cli → core ← passes, models, tools; no cycles."""

from __future__ import annotations

from pathlib import Path

from surgery.layers import cycles, import_graph, layer_of, lines_per_layer, wrong_arrows

ROOT = Path(__file__).resolve().parents[1]


def test_layer_names():
    assert layer_of("surgery.cli.apply") == "cli"
    assert layer_of("surgery.tools.ascend.atc") == "tools"
    assert layer_of("surgery.targets.base") == "core"


def test_no_import_cycles():
    graph = import_graph(ROOT)
    assert "surgery.targets.base" in graph and "surgery.passes.resize_nearest" in graph
    assert cycles(graph) == []


def test_core_imports_no_plugin_layer():
    assert wrong_arrows(import_graph(ROOT)) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": set()}) == [["a.x", "a.y"]]
    found = wrong_arrows({"surgery.graph": {"surgery.passes.truncate"}})
    assert found == [("surgery.graph", "surgery.passes.truncate")]


def test_lines_per_layer_counts_every_layer():
    lines = lines_per_layer(ROOT)
    assert set(lines) == {"cli", "core", "passes", "models", "tools"} and all(v > 100 for v in lines.values())


def test_every_package_is_listed_for_setuptools():
    """A package folder missing from pyproject's list works editable and is absent from a real install."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = config["package-dir"]
    found = set()
    for prefix, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([prefix, *rel.parts]))
    assert sorted(found - listed) == []
