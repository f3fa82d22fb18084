"""Speed and honesty of `surgery bench`'s harness on onnxruntime CPU.

    python benchmarks/bench_harness.py [--pairs 15] [--iterations 3000] [--runs 6] [--min-time 1.0]

(1) Overhead: the harness's timed loop (``surgery.bench.time_calls`` over the session call
    that ``tools.onnxruntime.run_jobs`` times) against a bare ``session.run`` loop on the same
    session, batch 1, for a tiny and a small model. Runs are interleaved (bare, harness,
    harness, bare, ...) and the median of the per-pair wall-time ratios is printed; target
    within 2 %.
(2) Honesty: the same model benchmarked in back-to-back runs (fresh session each, as
    `surgery bench` does); for each consecutive pair, the relative difference of the two
    medians beside the half-width of the 95 % interval that `surgery diff` reports for
    their ratio, and the i.i.d. bootstrap's half-width for contrast.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from surgery.tools import onnxruntime as ort_tool

from surgery.bench import Job, Measure, time_calls
from surgery.stats import speedup_ci


def conv_model(channels: int, hw: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, hw, hw])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def overhead(model: onnx.ModelProto, pairs: int, iterations: int) -> dict[str, float]:
    session = ort_tool.make_session(model)
    names = [o.name for o in session.get_outputs()]
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    feed = {"x": np.random.default_rng(0).random(shape, dtype=np.float32)}
    # the very call run_jobs times (a partial over session.run), on the same session: two sessions
    # would differ by their own memory layout and thread pools, not by the harness
    call = functools.partial(session.run, names, feed)
    run = session.run
    for _ in range(200):
        run(names, feed)
        call()

    def bare() -> float:
        t0 = time.perf_counter()
        for _ in range(iterations):
            run(names, feed)
        return time.perf_counter() - t0

    def harness() -> tuple[float, float]:
        t0 = time.perf_counter()
        lat = time_calls(call, iterations=iterations)
        return time.perf_counter() - t0, sum(lat) / 1000.0

    ratios, reported = [], []
    bare_us = []
    for k in range(pairs):
        if k % 2:  # alternate the order so neither side always runs second
            wall, timed = harness()
            b = bare()
        else:
            b = bare()
            wall, timed = harness()
        ratios.append(wall / b)
        reported.append(timed / b)
        bare_us.append(b / iterations * 1e6)
    return {"bare_us": statistics.median(bare_us), "wall_ratio": statistics.median(ratios),
            "reported_ratio": statistics.median(reported)}


def back_to_back(model: onnx.ModelProto, runs: int, min_time: float) -> list[np.ndarray]:
    feed = {"x": np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)}
    out = []
    for _ in range(runs):
        rec = ort_tool.run_jobs([Job(source=model.SerializeToString(), options=ort_tool.OrtOptions(), feed=feed)],
                                Measure(warmup=5, min_time=min_time))[0]
        out.append(np.asarray(rec.latencies_ms))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()

    print(f"onnxruntime {ort_tool.version()}, CPU; harness overhead at batch 1 "
          f"({args.pairs} interleaved pairs x {args.iterations} calls)")
    print(f"{'model':<22} {'bare us/call':>12} {'harness wall / bare':>20} {'harness reported / bare':>24}")
    for label, model in (("tiny conv 3->4 8x8", conv_model(4, 8)), ("small conv 3->16 32x32", conv_model(16, 32))):
        r = overhead(model, args.pairs, args.iterations)
        print(f"{label:<22} {r['bare_us']:>12.2f} {(r['wall_ratio'] - 1) * 100:>+19.2f}% "
              f"{(r['reported_ratio'] - 1) * 100:>+23.2f}%")

    print()
    print(f"back-to-back runs of the same model (conv 3->16 16x16, batch 1, {args.min_time:g} s each, fresh session)")
    print(f"{'pair':<5} {'median A us':>11} {'median B us':>11} {'|diff|':>7}  {'diff reports: B vs A, 95% CI':<30}"
          f" {'±half':>6} {'iid ±half':>9}  covers 1.0")
    samples = back_to_back(conv_model(16, 16), args.runs, args.min_time)
    within = 0
    for k, (a, b) in enumerate(itertools.pairwise(samples)):
        ma, mb = float(np.median(a)), float(np.median(b))
        diff = abs(mb - ma) / ma
        ci = speedup_ci(a, b)
        iid = speedup_ci(a, b, blocks=max(a.size, b.size), run_noise=0.0)
        half = (ci.high - ci.low) / 2 / ci.ratio
        iid_half = (iid.high - iid.low) / 2 / iid.ratio
        ok = ci.low <= 1.0 <= ci.high
        within += ok
        print(f"{k + 1:<5} {ma * 1000:>11.2f} {mb * 1000:>11.2f} {diff * 100:>6.2f}%  {ci.describe():<30}"
              f" {half * 100:>5.2f}% {iid_half * 100:>8.2f}%  {'yes' if ok else 'NO'}")
    print(f"{within}/{len(samples) - 1} pairs: the interval diff reports covers 1.0 (no significant change)")


if __name__ == "__main__":
    main()
