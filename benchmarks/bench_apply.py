"""Speed of `surgery apply` against onnx load+save, onnxsim and onnxslim on long Conv+Relu chains.

    python benchmarks/bench_apply.py [--sizes 2000,20000,100000] [--repeat 3]

(a) onnx.load + onnx.save; (b) `surgery apply --pass eliminate_dead_code --pass prune_outputs
outputs=0 --no-verify` run in-process through the CLI entry point (loading, digest, passes, summary
tables, atomic save and the JSON record: everything but interpreter start-up); (c) onnxsim.simplify;
(d) onnxslim.slim. Prints best-of-N seconds and ratios to (a). onnxslim grows with the square of the
node count on chains (50 s at 4k nodes here), so it is skipped where its estimate passes 5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def chain(n_nodes: int) -> onnx.ModelProto:
    nodes, inits, x = [], [], "x"
    w = np.full((4, 4, 1, 1), 0.1, np.float32)
    for i in range(n_nodes // 2):
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"conv{i}"))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slim-budget", type=float, default=300.0, help="skip onnxslim past this estimate (s)")
    args = parser.parse_args()

    from surgery.cli.main import main as surgery

    tmp = Path(tempfile.mkdtemp(prefix="surgery-bench-"))
    rows = []
    slim_rate = None  # seconds per node², measured at the first size
    for n in (int(s) for s in args.sizes.split(",")):
        src = tmp / f"chain{n}.onnx"
        onnx.save(chain(n), src)
        repeat = args.repeat if n <= 20000 else max(1, args.repeat - 1)

        def load_save(src=src):
            onnx.save(onnx.load(src), tmp / "out_a.onnx")

        def surgery_apply(src=src):
            with contextlib.redirect_stdout(io.StringIO()):
                rc = surgery(["apply", str(src), "--pass", "eliminate_dead_code", "--pass", "prune_outputs",
                              "outputs=0", "--no-verify", "-o", str(tmp / "out_b.onnx")])
            assert rc == 0

        def onnxsim_run(src=src):
            import onnxsim

            model, _ = onnxsim.simplify(onnx.load(src))
            onnx.save(model, tmp / "out_c.onnx")

        def onnxslim_run(src=src):
            import onnxslim

            with contextlib.redirect_stdout(io.StringIO()):
                onnxslim.slim(str(src), str(tmp / "out_d.onnx"))

        a = best_of(load_save, repeat)
        b = best_of(surgery_apply, repeat)
        c = best_of(onnxsim_run, 1)
        d: float | str
        estimate = slim_rate * n * n if slim_rate else 0.0
        if estimate > args.slim_budget:
            d = f"skipped (est. {estimate:.0f} s)"
        else:
            d = best_of(onnxslim_run, 1)
            slim_rate = d / (n * n)
        rows.append((n, a, b, c, d))
        print(f"{n:>7} nodes | (a) load+save {a:7.3f} s | (b) surgery apply {b:7.3f} s = {b / a:5.1f}x "
              f"| (c) onnxsim {c:7.3f} s = {c / a:5.1f}x | (d) onnxslim "
              + (f"{d:7.3f} s = {d / a:6.1f}x" if isinstance(d, float) else d), flush=True)
    if len(rows) > 1:
        (n0, a0, b0, *_), (n1, a1, b1, *_) = rows[0], rows[-1]
        print(f"scaling {n0}→{n1} nodes ({n1 / n0:.0f}x): load+save {a1 / a0:.1f}x, surgery apply {b1 / b0:.1f}x "
              f"(linear = {n1 / n0:.0f}x)")


if __name__ == "__main__":
    main()
