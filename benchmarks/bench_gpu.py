"""The zoo's perf table on a GPU: every zoo model at batch 1..32 on ort-cuda (or ort-trt).

    python benchmarks/bench_gpu.py [--target ort-cuda|ort-trt] [--models unetpp,hrnet_w18,...]
                                   [--batch 1,2,4,8,16,32] [--max-time S] [--out DIR]

Needs onnxruntime-gpu (``pip uninstall onnxruntime && pip install onnxruntime-gpu``; ort-trt
also ``pip install tensorrt`` with its libraries on LD_LIBRARY_PATH) and torch to export the zoo
models. Each model runs as one ``surgery bench ZOO --target T --batch ...`` in its own process
(what a user types), writing its record to ``--out``; the script then prints one table: per
model and batch, samples/s, p50 ms, the precision reached, and the guide's published T4
figure where the recipe has one (a published figure, not a measurement: TensorRT FP16 on a
T4, while ort-cuda runs FP32 through onnxruntime, copies to and from the device included).

Without the provider the script says which one is missing, in one line, and exits 2. On a
CPU-only host ``--target ort-cpu`` runs the same table (slowly: use small ``--models`` and
``--batch`` to smoke-test it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from surgery.models import ZOO
from surgery.tools import onnxruntime as ort_tool

DEFAULT_BATCHES = "1,2,4,8,16,32"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="ort-cuda", choices=sorted(ort_tool.PROVIDERS))
    parser.add_argument("--models", default=",".join(ZOO.recipes), help="zoo models, comma-separated (all)")
    parser.add_argument("--batch", default=DEFAULT_BATCHES, help=f"batch sizes ({DEFAULT_BATCHES})")
    parser.add_argument("--max-time", type=float, default=None, help="--max-time per batch (bench's default)")
    parser.add_argument("--precision", type=float, default=None, help="--precision (bench's default)")
    parser.add_argument("--out", metavar="DIR", help="where the records go (default: a temp folder)")
    args = parser.parse_args()

    try:
        ort_tool.require(args.target)
    except Exception as exc:  # ToolNotFoundError: one line naming the provider and how to get it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in ZOO.recipes]
    if unknown:
        print(f"error: not zoo models: {', '.join(unknown)} (zoo: {', '.join(ZOO.recipes)})", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"onnxruntime {ort_tool.version()} on {args.target}; batch {args.batch}; records in {out}")
    rows: list[tuple[str, dict]] = []
    for name in names:
        record = out / f"{name}.{args.target}.bench.json"
        argv = [sys.executable, "-m", "surgery.cli.main", "bench", name, "--target", args.target,
                "--batch", args.batch, "--record", str(record), "--json"]
        for flag, value in (("--max-time", args.max_time), ("--precision", args.precision)):
            if value is not None:
                argv += [flag, str(value)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if not record.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"  {name}: failed (exit {done.returncode}): {tail}")
            continue
        data = json.loads(record.read_text(encoding="utf-8"))
        rows.append((name, data))
        print(f"  {name}: {data['status']} ({len(data['perf'])} batch sizes)", flush=True)

    print()
    print(f"{'model':<14} {'batch':>5} {'ran':>4} {'samples/s':>11} {'p50 ms':>9} {'±':>7} {'stop':<10} "
          f"{'T4 fps (guide)':>15}")
    for name, data in rows:
        t4 = ZOO.recipes[name].published.throughput.get("T4", {})
        for p in data["perf"]:
            if p.get("error"):
                print(f"{name:<14} {p['batch']:>5} {'—':>4} {'failed':>11}  {p['error'][:70]}")
                continue
            half = p.get("half_width")
            ref = t4.get(p["batch"])
            print(f"{name:<14} {p['batch']:>5} {p['effective_batch']:>4} {p['throughput']:>11,.1f} "
                  f"{p['stats']['median']:>9.3f} {f'±{half * 100:.1f}%' if half else '—':>7} "
                  f"{p.get('stop') or '—':<10} {f'{ref:,.1f}' if ref else '—':>15}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
