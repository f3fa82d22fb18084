"""A model over 2 GB through surgery, against onnx load + save of the same model: time and peak memory.

    python benchmarks/bench_large.py [--gib 3] [--folder DIR] [--verbs inspect,apply,apply-verify,bench]

Builds a model with ``--gib`` GiB of float32 weights in one external data file (three
Gather tables, a MatMul, and a dead node so that ``eliminate_dead_code`` changes the
graph), then runs each step in a fresh process and reads its peak resident memory from
``wait4``:

- ``onnx load+save``: ``onnx.load`` (with its external data) and ``onnx.save_model`` with
  external data to one file: the floor any tool that edits the model pays;
- ``surgery inspect``;
- ``surgery apply --pass eliminate_dead_code --no-verify`` and the same with verification
  (checker, shape inference, onnxruntime parity before vs after);
- ``surgery bench --batch 1``;
- ``surgery tune`` (only when asked: it builds a session per candidate).

After the applies it checks that the output has exactly one data file, of the weights'
size (never doubled, also when saved twice over), and that it reloads with the same
weights. Wall times are indicative (a shared machine); peak memory is the figure to read,
as a multiple of the weights' size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

TABLE_ROWS = 1024  # each table is [rows, width] float32; the width sets its size
CHUNK_ROWS = 64


def build(folder: Path, gib: float, tables: int = 3) -> tuple[Path, int]:
    """Write ``big.onnx`` + ``big.onnx.data`` (``gib`` GiB of weights) without holding them in memory."""
    total = int(gib * 2**30)
    width = max(1, total // (tables * TABLE_ROWS * 4))
    data_path = folder / "big.onnx.data"
    inits: list[TensorProto] = []
    rng = np.random.default_rng(0)
    offset = 0
    with open(data_path, "wb") as f:
        for k in range(tables):
            for _ in range(0, TABLE_ROWS, CHUNK_ROWS):  # stream the table in chunks
                f.write(rng.standard_normal((CHUNK_ROWS, width), dtype=np.float32).tobytes())
            length = TABLE_ROWS * width * 4
            t = TensorProto(name=f"table{k}", data_type=TensorProto.FLOAT, dims=[TABLE_ROWS, width])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_path.name), ("offset", str(offset)), ("length", str(length))):
                e = t.external_data.add()
                e.key, e.value = key, value
            inits.append(t)
            offset += length
    proj = rng.standard_normal((width, 8), dtype=np.float32)
    inits.append(onnx.numpy_helper.from_array(proj, "proj"))
    nodes = [helper.make_node("Gather", [f"table{k}", "ids"], [f"g{k}"], axis=0) for k in range(tables)]
    nodes.append(helper.make_node("Sum", [f"g{k}" for k in range(tables)], ["s"]))
    nodes.append(helper.make_node("MatMul", ["s", "proj"], ["y"]))
    nodes.append(helper.make_node("Neg", ["s"], ["dead"]))  # eliminate_dead_code removes it: parity runs
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "big.onnx"
    path.write_bytes(model.SerializeToString())
    return path, offset


ONNX_LOAD_SAVE = """
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True,
                location=sys.argv[2].rsplit('/', 1)[-1] + '.data', size_threshold=1024)
"""


def measure(argv: list[str], cwd: Path) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS bytes, exit code, last line: stderr's when it failed, else stdout's)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stream = err if proc.returncode else out
        stream.seek(0)
        lines = stream.read().decode(errors="replace").strip().splitlines()
    return seconds, usage.ru_maxrss * 1024, proc.returncode, lines[-1] if lines else ""


def surgery(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from surgery.cli.main import main; sys.exit(main(sys.argv[1:]))",
            *args]


def check_output(path: Path, weights: int) -> str:
    """One data file of the weights' size, and the model reloads through surgery."""
    from surgery.graph import load_model_file

    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    data = path.parent / f"{path.name}.data"
    size = data.stat().st_size if data.exists() else 0
    loaded = load_model_file(path)
    n = sum(len(t.raw_data) for t in loaded.model.graph.initializer if t.name.startswith("table"))
    if weights >= 2_000_000_000:  # above protobuf's limit: exactly one data file, of the weights' size
        good = files == [path.name, data.name] and weights <= size < weights * 1.01
    else:  # small enough to be saved inline
        good = files == [path.name] or weights <= size < weights * 1.01
    verdict = "ok" if good and n == weights else "BAD"
    return f"{verdict}: files {files}, data {size / 2**30:.3f} GiB, tables reloaded {n / 2**30:.3f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=3.0, help="GiB of weights (3)")
    parser.add_argument("--folder", help="where the model goes (default: a temporary folder, removed)")
    parser.add_argument("--verbs", default="inspect,apply,apply-verify,bench",
                        help="steps after onnx load+save: inspect, apply, apply-verify, bench, tune")
    args = parser.parse_args(argv)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="surgery-large-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        path, weights = build(folder, args.gib)
        print(f"model: {path} with {weights / 2**30:.2f} GiB of weights in one data file "
              f"(built in {time.perf_counter() - started:.1f} s)")
        steps: list[tuple[str, list[str], Path | None]] = [
            ("onnx load+save", [sys.executable, "-c", ONNX_LOAD_SAVE, str(path), str(folder / "onnx_copy.onnx")],
             None)]
        verbs = [v.strip() for v in args.verbs.split(",") if v.strip()]
        for verb in verbs:
            if verb == "inspect":
                steps.append(("surgery inspect", surgery("inspect", str(path)), None))
            elif verb == "apply":
                out = folder / "out.onnx"
                steps.append(("surgery apply --no-verify",
                              surgery("apply", str(path), "--pass", "eliminate_dead_code", "--no-verify", "-o",
                                      str(out)), out))
                steps.append(("  again, same output",
                              surgery("apply", str(path), "--pass", "eliminate_dead_code", "--no-verify", "-o",
                                      str(out)), out))
            elif verb == "apply-verify":
                out = folder / "verified.onnx"
                steps.append(("surgery apply (verified)",
                              surgery("apply", str(path), "--pass", "eliminate_dead_code", "--samples", "1", "-o",
                                      str(out)), out))
            elif verb == "bench":
                steps.append(("surgery bench --batch 1",
                              surgery("bench", str(path), "--batch", "1", "--iterations", "5", "--record",
                                      str(folder / "bench.json")), None))
            elif verb == "tune":
                steps.append(("surgery tune", surgery("tune", str(path), "--no-session-settings", "--iterations",
                                                      "5", "-o", str(folder / "tuned.onnx")), folder / "tuned.onnx"))
            else:
                parser.error(f"unknown step {verb!r}")
        rows = []
        _, idle, _, _ = measure(surgery("list", "passes", "--json"), folder)  # the interpreter and imports alone
        print(f"an idle surgery process peaks at {idle / 2**30:.2f} GiB; 'x weights' is (peak - that) / weights")
        print(f"{'step':<28} {'exit':>4} {'wall s':>8} {'peak RSS GiB':>13} {'x weights':>10}")
        for label, command, out in steps:
            seconds, rss, code, last = measure(command, folder)
            ratio = (rss - idle) / weights
            rows.append({"step": label, "exit": code, "seconds": round(seconds, 2), "peak_rss": rss,
                         "rss_over_weights": round(ratio, 3), "last_line": last})
            print(f"{label:<28} {code:>4} {seconds:>8.1f} {rss / 2**30:>13.2f} {ratio:>10.2f}", flush=True)
            if last.startswith(("PASSED", "FAILED", "error")):
                print(f"{'':<28} {last[:160]}", flush=True)
            if out is not None and code == 0:
                print(f"{'':<28} output {check_output(out, weights)}", flush=True)
            for name in ("onnx_copy.onnx", "onnx_copy.onnx.data"):
                if (folder / name).exists():
                    (folder / name).unlink()
        print(json.dumps({"weights": weights, "idle_rss": idle, "steps": rows}))
        return 0 if all(r["exit"] == 0 for r in rows) else 1
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
