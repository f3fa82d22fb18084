"""Print the layer figures: non-blank lines per layer, import arrows between layers, cycles.

    python benchmarks/layers.py
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from surgery.layers import cycles, import_graph, layer_of, lines_per_layer, wrong_arrows

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    graph = import_graph(ROOT)
    print("lines per layer (non-blank):")
    for layer, n in sorted(lines_per_layer(ROOT).items(), key=lambda kv: -kv[1]):
        print(f"  {layer:<7} {n:>6}")
    arrows = Counter((layer_of(s), layer_of(d)) for s, ds in graph.items() for d in ds if layer_of(s) != layer_of(d))
    print("imports between layers:")
    for (src, dst), n in sorted(arrows.items()):
        print(f"  {src:>7} → {dst:<7} {n}")
    print(f"modules: {len(graph)}; cycles: {cycles(graph) or 'none'}; arrows against the layering: "
          f"{wrong_arrows(graph) or 'none'}")


if __name__ == "__main__":
    main()
