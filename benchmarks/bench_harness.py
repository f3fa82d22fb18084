"""Speed and honesty of `surgery bench`'s harness on onnxruntime CPU.

    python benchmarks/bench_harness.py [--pairs 15] [--iterations 2000] [--runs 6] [--max-time 3]

(1) Overhead: the harness's measurement loop (``surgery.targets.measure.interleave``, what
    ``tools.onnxruntime.run_jobs`` times with: warm-up, rounds, stop rule) against a bare
    ``session.run`` loop on the same session, batch 1, for a tiny, a small and a >= 1 ms model.
    Runs alternate (bare, harness, harness, bare, ...); the median of the per-pair wall-time
    ratios and of the reported-latency ratios are printed; target within 2 %.
(2) Honesty: the same model benchmarked ``--runs`` times in separate measurements (fresh
    sessions each). For each consecutive pair: the relative difference of the medians beside
    the unpaired interval ``surgery diff`` reports for them (at the stated default host noise,
    and at none), and the paired interval of the same model measured twice *together*.
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

from surgery.noise import DEFAULT_NOISE, conv_stack
from surgery.pairing import speedup
from surgery.stats import speedup_ci
from surgery.targets.measure import Job, Measure, interleave


def conv_model(channels: int, hw: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, hw, hw])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def feed_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    dims = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    return {model.graph.input[0].name: np.random.default_rng(0).random(dims, dtype=np.float32)}


def overhead(model: onnx.ModelProto, pairs: int, iterations: int) -> dict[str, float]:
    session = ort_tool.make_session(model)
    names = [o.name for o in session.get_outputs()]
    feed = feed_for(model)
    # the very call run_jobs times (a partial over session.run), on the same session: two sessions
    # would differ by their own memory layout and thread pools, not by the harness
    call = functools.partial(session.run, names, feed)
    run = session.run
    for _ in range(200):
        run(names, feed)
    measure = Measure(warmup=1, iterations=iterations)

    def bare() -> float:
        t0 = time.perf_counter()
        for _ in range(iterations):
            run(names, feed)
        return time.perf_counter() - t0

    def harness() -> tuple[float, float]:
        t0 = time.perf_counter()
        out = interleave([call], measure, warmed=1)
        return time.perf_counter() - t0, sum(out.latencies[0]) / 1000.0

    ratios, reported, bare_us = [], [], []
    extra = (iterations + 1) / iterations  # interleave's one timed warm-up call (it sizes the rounds)
    for k in range(pairs):
        if k % 2:  # alternate the order so neither side always runs second
            wall, timed = harness()
            b = bare()
        else:
            b = bare()
            wall, timed = harness()
        ratios.append(wall / (b * extra))
        reported.append(timed / b)
        bare_us.append(b / iterations * 1e6)
    return {"bare_us": statistics.median(bare_us), "wall_ratio": statistics.median(ratios),
            "reported_ratio": statistics.median(reported)}


def measured(model: onnx.ModelProto, copies: int, max_time: float):
    source = model.SerializeToString()
    jobs = [Job(source=source, options=ort_tool.OrtOptions(), feed=feed_for(model)) for _ in range(copies)]
    records = ort_tool.run_jobs(jobs, Measure(warmup=5, precision=None, max_time=max_time))
    for r in records:  # as sweep does: one id for the records of one rotation
        if r.pairing is not None:
            r.pairing["id"] = "together"
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--max-time", type=float, default=3.0)
    args = parser.parse_args()

    print(f"onnxruntime {ort_tool.version()}, CPU; harness overhead at batch 1 "
          f"({args.pairs} alternated pairs x {args.iterations} calls)")
    print(f"{'model':<26} {'bare us/call':>12} {'harness wall / bare':>20} {'harness reported / bare':>24}")
    models = (("tiny conv 3->4 8x8", conv_model(4, 8), args.iterations),
              ("small conv 3->16 32x32", conv_model(16, 32), args.iterations),
              ("conv stack 8x32ch 32x32", conv_stack(), max(50, args.iterations // 10)))
    for label, model, iterations in models:
        r = overhead(model, args.pairs, iterations)
        print(f"{label:<26} {r['bare_us']:>12.2f} {(r['wall_ratio'] - 1) * 100:>+19.2f}% "
              f"{(r['reported_ratio'] - 1) * 100:>+23.2f}%")

    print()
    print(f"the same model (conv stack) measured apart, {args.max_time:g} s each, fresh sessions: consecutive pairs")
    print(f"{'pair':<5} {'median A us':>11} {'median B us':>11} {'|diff|':>7}  "
          f"{'diff: unpaired, default noise':<36} {'unpaired, no noise':<28}")
    apart = [measured(conv_stack(), 1, args.max_time)[0] for _ in range(args.runs)]
    within = 0
    for k, (a, b) in enumerate(itertools.pairwise(apart)):
        ma, mb = a.stats["median"], b.stats["median"]
        ci = speedup_ci(a.latencies_ms, b.latencies_ms, run_noise=DEFAULT_NOISE)
        bare = speedup_ci(a.latencies_ms, b.latencies_ms, run_noise=0.0)
        within += ci.low <= 1.0 <= ci.high
        print(f"{k + 1:<5} {ma * 1000:>11.2f} {mb * 1000:>11.2f} {abs(mb - ma) / ma * 100:>6.2f}%  "
              f"{ci.describe():<36} {bare.describe():<28}")
    print(f"{within}/{len(apart) - 1} unpaired intervals cover 1.0 (no significant change)")
    print()
    print("the same model measured twice together (paired rounds):")
    for k in range(max(1, args.runs // 2)):
        a, b = measured(conv_stack(), 2, args.max_time)
        ci = speedup(a, b)
        print(f"  {k + 1}: {ci.describe():<28} ±{ci.half_width * 100:.2f}% over {ci.cycles} cycles, "
              f"{'no change' if ci.low <= 1.0 <= ci.high else 'FALSE VERDICT'}")


if __name__ == "__main__":
    main()
