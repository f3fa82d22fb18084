"""Every exact pass on real architectures the tests never saw: what verification says about each rewrite.

    python benchmarks/verify_architectures.py [--archs resnet18,vit_tiny] [--opsets 11,17] [--json out.json]

Each network of ``benchmarks/archs`` (plain torch, seeded weights calibrated as the zoo's
are) is exported with the TorchScript exporter at a static batch of 1, at each opset. Every
exact pass of the registry is then applied to that export on its own with ``surgery.apply``
(default verification: 3 samples from the named distributions, batches 2 and 3 proven when
the batch is freed). Passes that need options get the ones a user would type: ``truncate``
at the input of the last node, ``prune_outputs outputs=0``, ``fix_shapes`` with
``batch=dynamic``, ``batch=2`` and the spatial size doubled.

Each step lands in one class: verified, unchanged (the same bytes), unverified (with the
reason), failed (verification rejected the rewrite) or refused (the pass or its options
refused the model). Each rewrite verification accepted is re-checked independently on a
fresh sample; the closing lines count all of it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from archs import ARCHS, Arch

CODES = {"verified": "V", "unchanged": "=", "unverified": "U", "failed": "F", "refused": "R", "crashed": "!"}


def export(arch: Arch, opset: int) -> onnx.ModelProto:
    """The network exported as users do: TorchScript exporter, static batch 1, constants folded."""
    import torch

    torch.manual_seed(0)
    model = arch.build()
    if not arch.scripted:
        from surgery.models._calibrate import calibrate

        calibrate(model, {"x": arch.input_shape}, seed=0)
    x = torch.randn(*arch.input_shape, generator=torch.Generator().manual_seed(1))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["y"], do_constant_folding=True)
    return onnx.load_model_from_string(buffer.getvalue())


def pass_specs(model: onnx.ModelProto, arch: Arch, registry: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Every exact pass, with the options a user would give those that need some."""
    shape = arch.input_shape
    bigger = "x".join(str(d * 2 if k >= 2 else d) for k, d in enumerate(shape))
    last = model.graph.node[-1]
    cut = next((x for x in last.input if x and x not in {t.name for t in model.graph.initializer}), None)
    specs: list[tuple[str, dict[str, str]]] = []
    for name, cls in registry.items():
        if not cls.exact:
            continue
        if name == "prune_outputs":
            specs.append((name, {"outputs": "0"}))
        elif name == "truncate":
            if cut is not None:
                specs.append((name, {"tensors": cut}))
        elif name == "fix_shapes":
            specs.append((name, {"batch": "dynamic"}))
            specs.append((name, {"batch": "2"}))
            if len(shape) == 4:
                specs.append((name, {"shapes": f"x:{bigger}"}))
        else:
            specs.append((name, {}))
    return specs


def label(name: str, options: dict[str, str]) -> str:
    """The column: the pass and its options (truncate's tensor differs per model: its column does not name it)."""
    if name == "truncate":
        return "truncate (last node's input)"
    if name == "fix_shapes" and "shapes" in options:
        return "fix_shapes shapes=(spatial x2)"
    return name + "".join(f" {k}={v}" for k, v in options.items())


def _session(model: onnx.ModelProto, level: str = "basic") -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _feeds(model: onnx.ModelProto, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    from surgery.parity import random_samples
    from surgery.shapes import model_inputs, shapes_at

    specs = model_inputs(model)
    return [s.feed for s in random_samples(specs, shapes_at(specs, None, None), count=count, seed=seed)]


def recheck(before: onnx.ModelProto, after: onnx.ModelProto) -> dict[str, Any] | None:
    """The rewrite re-checked outside surgery: plain onnxruntime sessions, 3 fresh samples (seeds 1000+).

    Returns the max abs difference and whether every element passes Polygraphy's rule at
    atol = rtol = 1e-5, or None when the model before takes other shapes than the one after.
    """
    from surgery.parity import compare_arrays

    feeds = _feeds(after, 1000, 3)
    if not all(fits(before, n, v.shape) for n, v in feeds[0].items()):
        return None
    names = [o.name for o in after.graph.output]
    extended = onnx.ModelProto()
    extended.CopyFrom(before)
    present = {o.name for o in extended.graph.output}
    extended.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    try:
        a_sess, b_sess = _session(after), _session(extended)
        got = [a_sess.run(names, f) for f in feeds]
        want = [b_sess.run(names, f) for f in feeds]
    except Exception:
        return None
    diffs = [compare_arrays(n, [w[k] for w in want], [g[k] for g in got], 1e-5, 1e-5) for k, n in enumerate(names)]
    return {"max_abs": max(d.max_abs for d in diffs), "passed": all(d.passed for d in diffs)}


def fits(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> bool:
    vi = next((v for v in model.graph.input if v.name == name), None)
    if vi is None:
        return False
    dims = vi.type.tensor_type.shape.dim
    return len(dims) == len(shape) and all(not d.HasField("dim_value") or d.dim_value == n
                                           for d, n in zip(dims, shape, strict=True))


def noise_floor(model: onnx.ModelProto) -> float | None:
    """How far the model given differs from itself between onnxruntime's basic and full graph optimisations.

    A float-reordering rewrite (padding channels, fusing) moves outputs by about this much; a
    randomly initialised deep network amplifies such rounding where a trained one damps it.
    """
    try:
        basic, full = _session(model, "basic"), _session(model, "all")
        return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                   for f in _feeds(model, 0, 3) for a, b in zip(basic.run(None, f), full.run(None, f), strict=True))
    except Exception:
        return None


def run_one(model: onnx.ModelProto, arch: Arch, name: str, options: dict[str, str], registry: dict[str, Any],
            samples: int) -> dict[str, Any]:
    from surgery.apply import apply
    from surgery.errors import SurgeryError, VerificationError

    started = time.perf_counter()
    row: dict[str, Any] = {"pass": label(name, options)}
    try:
        result = apply(model, [(name, options)], registry=registry, samples=samples)
    except VerificationError as exc:
        row.update(outcome="failed", why=str(exc))
        if "is exact but changed output" in str(exc):
            row["noise_floor"] = noise_floor(model)
    except SurgeryError as exc:
        row.update(outcome="refused", why=str(exc))
    except Exception as exc:  # a bug somewhere: counted apart, never hidden
        row.update(outcome="crashed", why=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        v = result.steps[0].verification
        row.update(outcome=v.status, why="; ".join(v.reasons), hazards=v.hazards, batches=v.batches)
        if not result.verification.verified and result.verification.input_problems:
            row["input_problems"] = result.verification.input_problems
        if v.status == "verified":
            row["recheck"] = recheck(model, result.model)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated (default: all)")
    parser.add_argument("--opsets", default="11,17")
    parser.add_argument("--passes", default=None, help="comma-separated pass names (default: every exact pass)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="write every row here")
    args = parser.parse_args()

    from surgery.passes import PASSES

    registry = {k: v for k, v in PASSES.items() if args.passes is None or k in args.passes.split(",")}
    names = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [n for n in names if n not in ARCHS]
    if unknown:
        parser.error(f"unknown architectures {unknown}; known: {', '.join(ARCHS)}")
    rows: list[dict[str, Any]] = []
    for arch_name in names:
        arch = ARCHS[arch_name]
        for opset in (int(o) for o in args.opsets.split(",")):
            t = time.perf_counter()
            try:
                model = export(arch, opset)
            except Exception as exc:
                print(f"{arch_name:>20} opset {opset}: export failed: {str(exc).splitlines()[0][:150]}", flush=True)
                continue
            out = [run_one(model, arch, n, o, registry, args.samples) for n, o in pass_specs(model, arch, registry)]
            for r in out:
                r.update(arch=arch_name, opset=opset)
            rows.extend(out)
            line = " ".join(CODES[r["outcome"]] for r in out)
            print(f"{arch_name:>20} opset {opset}: {len(model.graph.node):>4} nodes  {line}  "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    report(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


def report(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print("\ncolumns, in order:", ", ".join(dict.fromkeys(r["pass"] for r in rows)))
    print("codes: " + ", ".join(f"{c} {k}" for k, c in CODES.items()))
    by_outcome = Counter(r["outcome"] for r in rows)
    print(f"\n{len(rows)} steps: " + ", ".join(f"{by_outcome[k]} {k}" for k in CODES if by_outcome[k]))
    changed = [r for r in rows if r["outcome"] != "unchanged" and r["outcome"] != "refused"]
    print(f"steps that changed the model: {len(changed)}; of those verified: {by_outcome['verified']}")
    rechecked = [r for r in rows if r.get("recheck")]
    exact = [r for r in rechecked if r["recheck"]["max_abs"] == 0]
    off = [r for r in rechecked if not r["recheck"]["passed"]]
    print(f"verified rewrites re-checked outside surgery (plain onnxruntime, 3 fresh samples): {len(rechecked)}; "
          f"bit-identical {len(exact)}; beyond atol=rtol=1e-5: {len(off)}"
          + "".join(f"\n  {r['arch']} opset {r['opset']} {r['pass']}: max abs {r['recheck']['max_abs']:.3g}"
                    for r in off))
    noisy = [r for r in rows if r.get("noise_floor") is not None]
    for r in noisy:
        print(f"  failed {r['arch']} opset {r['opset']} {r['pass']}: the model itself differs by "
              f"{r['noise_floor']:.3g} between onnxruntime's basic and full optimisation levels")
    for outcome in ("unverified", "failed", "refused", "crashed"):
        group = [r for r in rows if r["outcome"] == outcome]
        if not group:
            continue
        print(f"\n{outcome} ({len(group)}):")
        reasons: dict[str, list[str]] = defaultdict(list)
        for r in group:
            reasons[_gist(r["why"])].append(f"{r['arch']}@{r['opset']} {r['pass']}")
        for why, where in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(where):>3} × {why}\n        {', '.join(where[:6])}{' …' if len(where) > 6 else ''}")
    hazards = [r for r in rows if r.get("hazards")]
    if hazards:
        print(f"\nsteps whose batch hazards were named: {len(hazards)}")


def _gist(text: str) -> str:
    """A reason without the parts that differ per model (node names, numbers), to group alike reasons."""
    import re

    text = re.sub(r"'[^']*'", "'…'", text or "(no reason)")
    text = re.sub(r"\[[^\]]*\]", "[…]", text)
    text = re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", text)
    return text[:220]


if __name__ == "__main__":
    main()
