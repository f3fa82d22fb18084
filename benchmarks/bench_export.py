"""Export time and ONNX node count of each zoo model at its guide's input size (batch 1).

    python benchmarks/bench_export.py [--models icnet,unetpp] [--all-variants] [--repeat 1]

Seeded weights (no checkpoint): the export does the same work either way. Time covers
building the network, tracing it once at full size, and serialising; it depends mostly on
the convolution cost of one forward pass at the guide's resolution.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from surgery.models import RECIPES, export_model


def variant_sets(name: str, every: bool) -> list[dict[str, str]]:
    recipe = RECIPES[name]
    if not every or not recipe.variants:
        return [{}]
    keys = [v.key for v in recipe.variants]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v.choices for v in recipe.variants))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(RECIPES), help="comma-separated zoo names (default: all)")
    parser.add_argument("--all-variants", action="store_true", help="every variant combination, not only defaults")
    parser.add_argument("--repeat", type=int, default=1, help="exports per row; the best time is shown")
    args = parser.parse_args()

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    folder = Path(tempfile.mkdtemp(prefix="surgery-bench-export-"))
    print(f"{'model':<14}{'variants':<20}{'input':<26}{'export s':>10}{'nodes':>8}{'MiB':>9}")
    for name in names:
        for variants in variant_sets(name, args.all_variants):
            out = folder / f"{name}.onnx"
            times, result = [], None
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = export_model(name, out, variants=variants, batch=1)
                times.append(time.perf_counter() - start)
            shape = ",".join(f"{k}:{'x'.join(map(str, v))}" for k, v in result.input_shapes.items())
            label = ",".join(f"{k}={v}" for k, v in result.variants.items()) or "-"
            print(f"{name:<14}{label:<20}{shape:<26}{min(times):>10.2f}{result.nodes:>8}"
                  f"{out.stat().st_size / 2**20:>9.1f}", flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
