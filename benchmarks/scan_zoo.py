"""`surgery scan` over the five zoo models: sites per pass, and TransData sources before and after passes.

    python benchmarks/scan_zoo.py [--small] [--models icnet,unetpp,...] [--jobs N] [--json OUT.json]

Each zoo model is exported at its guide's input size (``--small``: a reduced size, for a smoke
run; ``large_avgpool`` then differs, since it depends on the size), ICNet also in the variant the
guide compiled (``ppm=ascend``). For each:
(a) the scan: every pass that runs without options, dry-run on its own copy: sites per pass;
(b) the TransData-source estimate (:mod:`surgery.transdata`) of the export;
(c) the same after the recipe's default passes (the guide's own surgery: ICNet's output pruning,
    UNet++'s nearest resize, DeepLabV3's onnxsim; nothing for CSPResNeXt50 and HRNet-W18);
(d) the same after the exact TransData passes the scan says would change it, applied in order
    on top of (c) with verification (checker, shape inference, onnxruntime parity, 1 sample) at
    ``atol`` = 1e-6 × the largest output magnitude (float32 rounding at the outputs' own scale:
    the seeded exports' logits reach the hundreds, where reordered sums differ by 1e-4): the
    parity column is the worst max abs error of those passes (0: bit for bit).
Counts, not timings: run it anywhere. Exports are cached (``$SURGERY_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# the exact passes aimed at a TransData source, in the order they are applied in (d)
FIXES = ("conv1d_to_conv2d", "merge_slices", "slice_to_split", "fold_slice_into_conv", "avgpool_split",
         "align_channels")
SMALL = {"icnet": (1, 3, 256, 512), "unetpp": (1, 3, 32, 32), "cspresnext50": (1, 3, 64, 64),
         "deeplabv3": (1, 3, 64, 128), "hrnet_w18": (1, 3, 64, 64)}
SHORT = {"unaligned_channels": "C", "channel_slices": "slice", "conv1d": "1d", "large_avgpool": "pool",
         "reshape_between_convs": "reshape"}


def export(name: str, variants: dict[str, str], small: bool) -> Path:
    from surgery.models import get_recipe, resolve_zoo_model

    shapes = None
    if small:
        first = next(iter(get_recipe(name).input_shapes(1)))
        shapes = {first: SMALL[name]}
    return Path(resolve_zoo_model(name, variants=variants, input_shapes=shapes))


def output_scale(model) -> float:
    """The largest output magnitude on a seeded input of each distribution NumericParity draws from."""
    from surgery.parity import DISTRIBUTIONS, Session, random_feed, resolve_shapes
    from surgery.shapes import model_inputs

    specs = model_inputs(model)
    session = Session(model)
    outputs = [session.run(random_feed(specs, resolve_shapes(specs), 0, distribution=d)) for d in DISTRIBUTIONS]
    return max(float(abs(v).max()) for out in outputs for v in out.values()) or 1.0


def sources(est: dict) -> str:
    parts = [f"{SHORT[k]} {v}" for k, v in est["counts"].items() if v]
    return f"{est['total']}" + (f" ({', '.join(parts)})" if parts else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="export at reduced sizes (a smoke run)")
    parser.add_argument("--models", default="icnet,unetpp,cspresnext50,deeplabv3,hrnet_w18")
    parser.add_argument("--jobs", type=int, default=None, help="models scanned at once (default: one per core)")
    parser.add_argument("--json", metavar="OUT.json", help="also write every figure as JSON")
    args = parser.parse_args()

    import onnx
    from surgery.models import get_recipe
    from surgery.passes import PASSES

    from surgery.apply import apply
    from surgery.errors import SurgeryError
    from surgery.graph import load_model
    from surgery.scan import choose_passes, scan
    from surgery.transdata import estimate

    entries: list[tuple[str, dict[str, str]]] = []
    for name in [m for m in args.models.split(",") if m]:
        entries.append((name, {}))
        if name == "icnet":
            entries.append((name, {"ppm": "ascend"}))  # the graph the guide compiled
    started = time.perf_counter()
    paths = []
    for name, variants in entries:
        t0 = time.perf_counter()
        paths.append(export(name, variants, args.small))
        print(f"exported {name} {variants or ''} in {time.perf_counter() - t0:.1f} s: {paths[-1]}", flush=True)
    passes, not_run = choose_passes(PASSES)
    rows = scan(paths, passes, jobs=args.jobs)
    print(f"\n{'model':<18} {'nodes':>6}  passes that would change it (sites)")
    for (name, variants), row in zip(entries, rows, strict=True):
        label = name + "".join(f" {k}={v}" for k, v in variants.items())
        print(f"{label:<18} {row.nodes:>6}  " + (row.error or ", ".join(f"{p.name} {p.sites}" for p in row.passes
                                                                         if p.changed)), flush=True)
        for p in row.passes:
            if p.error:
                print(f"{'':<26}error in {p.name}: {p.error}")
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="scan-zoo-"))
    for (name, variants), path, row in zip(entries, paths, rows, strict=True):
        label = name + "".join(f" {k}={v}" for k, v in variants.items())
        if row.error:
            print(f"{label}: {row.error}")
            continue
        recipe = get_recipe(name)
        model = load_model(path)
        steps = [(s.name, {k: str(v) for k, v in s.options.items()}) for s in recipe.default_passes]
        after_recipe = apply(model, steps, registry=PASSES, verify=False).model if steps else model
        fixes = [f for f in FIXES if f in PASSES and any(p.name == f and p.changed for p in row.passes)]
        fixed, parity, failure = after_recipe, {}, None
        if fixes:
            atol = 1e-6 * output_scale(after_recipe)
            try:
                result = apply(after_recipe, fixes, registry=PASSES, samples=1, atol=atol)
            except SurgeryError as exc:
                failure = str(exc)
            else:
                fixed = result.model
                for step in result.steps:
                    figures = step.figures.get("parity", {})
                    worst = max((d["max_abs"] for d in figures.get("outputs", {}).values()), default=None)
                    parity[step.name] = {"changed": step.changed, "counts": step.counts, "max_abs": worst,
                                         "atol": atol}
                onnx.save(fixed, tmp / f"{name}.fixed.onnx")
        results.append({
            "model": label, "path": str(path), "nodes": row.nodes,
            "sites": {p.name: p.sites for p in row.passes if p.changed},
            "errors": {p.name: p.error for p in row.passes if p.error},
            "transdata_before": row.transdata, "recipe_passes": [s[0] for s in steps],
            "transdata_after_recipe": estimate(after_recipe).to_dict(),
            "fixes": parity, "fix_failure": failure, "transdata_after_fixes": estimate(fixed).to_dict(),
        })

    print(f"\n{'model':<18} {'TransData sources: export':<34} {'after recipe passes':<34} "
          f"{'after the TransData passes':<34} parity (max abs)")
    for r in results:
        worst = [v["max_abs"] for v in r["fixes"].values() if v["max_abs"] is not None]
        print(f"{r['model']:<18} {sources(r['transdata_before']):<34} {sources(r['transdata_after_recipe']):<34} "
              f"{sources(r['transdata_after_fixes']):<34} {max(worst) if worst else '—'}"
              + (f"  [{', '.join(r['fixes'])}]" if r["fixes"] else "")
              + (f"  FAILED: {r['fix_failure']}" if r["fix_failure"] else ""))
    for name, why in not_run.items():
        print(f"not run: {name}: {why}")
    print(f"total {time.perf_counter() - started:.0f} s" + (" (small sizes)" if args.small else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
