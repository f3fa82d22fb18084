"""Each accelerator pass on a graph of its own pattern repeated, against onnx load+save and auto-optimizer.

    python benchmarks/bench_passes.py [--sizes 2000,20000] [--repeat 3] [--passes merge_slices,...]
                                      [--ait-python /work/ait-venv/bin/python | --no-ait]

Per pass and graph size (nodes, approximately):
(a) ``onnx.load`` + ``onnx.save`` of the file;
(b) ours: load, the pass, save, in this process (``surgery apply --no-verify`` minus the CLI);
(c) the matching auto-optimizer knowledge (``ait-surgeon`` 0.1.1) in its own venv, timed inside
    its process by ``benchmarks/ao_driver.py`` (parse + knowledge + save; start-up not counted).
Sites: the pattern instances each side rewrote, counted the same way for both from the models
before and after. Parity: onnxruntime (this venv's) on one seeded input: each result against
the input model, and ours against auto-optimizer's. The last lines give the scaling of (b)
from the smallest to the largest size (linear = the size ratio).

Cases are plain data (:class:`Case`): a builder of ``units`` repetitions of the pattern, the
pass, the knowledge, and the site counter. Append to ``CASES`` to add one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

I64, F32 = np.int64, np.float32
DRIVER = Path(__file__).with_name("ao_driver.py")


@dataclass(frozen=True)
class Case:
    """One benchmark: ``build(units)`` repeats the pattern ``units`` times (``unit_nodes`` nodes each)."""

    pass_name: str
    options: dict[str, str]
    build: Callable[[int], onnx.ModelProto]
    unit_nodes: int
    knowledge: str | None
    sites: Callable[[onnx.ModelProto, onnx.ModelProto], int]


# -- graph building --------------------------------------------------------------------------------


class Chain:
    """A single-input chain being built: ``x`` is the current tensor."""

    def __init__(self, shape: list[int], dtype: int = TensorProto.FLOAT):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("x", dtype, shape)
        self.x = "x"
        self.k = 0

    def name(self, hint: str) -> str:
        self.k += 1
        return f"{hint}{self.k}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [self.name(f"{op_type.lower()}_out") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs

    def model(self, opset: int = 13, out_dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "bench", [self.input],
                                  [helper.make_tensor_value_info(self.x, out_dtype, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model


def _slice(c: Chain, x: str, start: int, end: int, axis: int) -> str:
    # with steps, as torch exports x[:, a:b] (auto-optimizer's slice merge fails on Slices without them)
    return c.op("Slice", [x, c.const(np.array([start], I64), "st"), c.const(np.array([end], I64), "en"),
                          c.const(np.array([axis], I64), "ax"), c.const(np.array([1], I64), "sp")])[0]


def build_merge_slices(units: int) -> onnx.ModelProto:
    c = Chain([1, 16, 16])
    for _ in range(units):
        a = _slice(c, c.x, 0, 16, 1)
        b = _slice(c, a, 0, 16, 2)
        c.x = c.op("Relu", [b])[0]
    return c.model()


def build_merge_concats(units: int) -> onnx.ModelProto:
    c = Chain([1, 2])
    for _ in range(units):
        inner = c.op("Concat", [c.x, c.x], axis=1)[0]
        outer = c.op("Concat", [inner, c.x], axis=1)[0]
        c.x = c.op("Relu", [_slice(c, outer, 0, 2, 1)])[0]
    return c.model()


def build_merge_casts(units: int) -> onnx.ModelProto:
    c = Chain([1, 8])
    for _ in range(units):
        a = c.op("Cast", [c.x], to=TensorProto.FLOAT16)[0]
        b = c.op("Cast", [c.x], to=TensorProto.FLOAT16)[0]
        s = c.op("Max", [a, b])[0]  # not Add: values would double per unit and overflow float16
        f = c.op("Cast", [s], to=TensorProto.FLOAT)[0]
        c.x = c.op("Cast", [f], to=TensorProto.FLOAT)[0]  # an identity Cast
    return c.model()


def build_cast_int64(units: int) -> onnx.ModelProto:
    c = Chain([1, 4, 4])
    for _ in range(units):
        s = c.op("Shape", [c.x])[0]
        d = c.op("Gather", [s, c.const(np.array(0, I64), "i")], axis=0)[0]
        u = c.op("Unsqueeze", [d, c.const(np.array([0], I64), "ax")])[0]
        shape = c.op("Concat", [u, c.const(np.array([4, 4], I64), "rest")], axis=0)[0]
        c.x = c.op("Relu", [c.op("Reshape", [c.x, shape])[0]])[0]
    return c.model()


def build_gather_to_split(units: int) -> onnx.ModelProto:
    c = Chain([3, 4])
    for _ in range(units):
        parts = [c.op("Gather", [c.x, c.const(np.array(k, I64), "i")], axis=0)[0] for k in range(3)]
        ups = [c.op("Unsqueeze", [p, c.const(np.array([0], I64), "ax")])[0] for p in parts]
        c.x = c.op("Concat", ups, axis=0)[0]
    return c.model()


def build_slice_to_split(units: int) -> onnx.ModelProto:
    c = Chain([1, 8, 4])
    for _ in range(units):
        a = _slice(c, c.x, 0, 4, 1)
        b = _slice(c, c.x, 4, 2**63 - 1, 1)
        c.x = c.op("Concat", [c.op("Relu", [b])[0], a], axis=1)[0]
    return c.model()


def build_fold_slice(units: int) -> onnx.ModelProto:
    c = Chain([1, 8, 4, 4])
    rng = np.random.default_rng(0)
    for _ in range(units):
        s = _slice(c, c.x, 0, 4, 1)
        w = c.const((rng.standard_normal((8, 4, 1, 1)) * 0.3).astype(F32), "w")
        c.x = c.op("Relu", [c.op("Conv", [s, w])[0]])[0]
    return c.model()


def build_bn_to_mul_add(units: int) -> onnx.ModelProto:
    c = Chain([1, 6, 8])
    rng = np.random.default_rng(0)
    for _ in range(units):
        t = c.op("Transpose", [c.x], perm=[0, 2, 1])[0]
        stats = [c.const((rng.random(8) + 0.5).astype(F32), "s"), c.const(rng.standard_normal(8).astype(F32), "b"),
                 c.const(rng.standard_normal(8).astype(F32), "m"), c.const((rng.random(8) + 0.5).astype(F32), "v")]
        n = c.op("BatchNormalization", [t, *stats])[0]
        c.x = c.op("Tanh", [c.op("Transpose", [n], perm=[0, 2, 1])[0]])[0]
    return c.model()


def build_reflect_pad(units: int) -> onnx.ModelProto:
    c = Chain([1, 2, 6, 6])
    for _ in range(units):
        p = c.op("Pad", [c.x, c.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], I64), "p")], mode="reflect")[0]
        s = c.op("Slice", [p, c.const(np.array([1, 1], I64), "st"), c.const(np.array([7, 7], I64), "en"),
                           c.const(np.array([2, 3], I64), "ax")])[0]
        c.x = c.op("Relu", [s])[0]
    return c.model()


def build_conv1d(units: int) -> onnx.ModelProto:
    c = Chain([1, 4, 16])
    rng = np.random.default_rng(0)
    for _ in range(units):
        w = c.const((rng.standard_normal((4, 4, 3)) * 0.3).astype(F32), "w")
        c.x = c.op("Relu", [c.op("Conv", [c.x, w], pads=[1, 1])[0]])[0]
    return c.model()


def build_topk(units: int) -> onnx.ModelProto:
    c = Chain([1, 8])
    for _ in range(units):
        v, _ = c.op("TopK", [c.x, c.const(np.array([8], I64), "k")], n_out=2, axis=1)
        c.x = c.op("Relu", [v])[0]
    return c.model()


def build_empty_slice(units: int) -> onnx.ModelProto:
    c = Chain([1, 4])
    for _ in range(units):
        e = _slice(c, c.x, 2, 2, 1)
        c.x = c.op("Relu", [c.op("Concat", [c.x, e], axis=1)[0]])[0]
    return c.model()


def build_resize(units: int) -> onnx.ModelProto:
    c = Chain([1, 1, 4, 4])
    for _ in range(units):
        r = c.op("Resize", [c.x, "", c.const(np.array([1, 1, 2, 2], F32), "sc")], mode="linear",
                 coordinate_transformation_mode="half_pixel")[0]
        c.x = c.op("AveragePool", [r], kernel_shape=[2, 2], strides=[2, 2])[0]
    return c.model()


# -- site counting ---------------------------------------------------------------------------------


def ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def fewer(op_type: str, per_site: int = 1) -> Callable[[onnx.ModelProto, onnx.ModelProto], int]:
    """Sites = how many ``op_type`` nodes went, ``per_site`` per site."""
    return lambda before, after: (ops(before)[op_type] - ops(after)[op_type]) // per_site


def conv_weights_4d(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    dims = {t.name: len(t.dims) for t in after.graph.initializer}
    return sum(1 for n in after.graph.node if n.op_type == "Conv" and dims.get(n.input[1]) == 4)


def int32_ops(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    """Nodes other than Cast whose output is int32 after (the int64 computations re-typed)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(after)
    except Exception:
        return -1
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    return sum(1 for n in after.graph.node if n.op_type != "Cast" and types.get(n.output[0]) == TensorProto.INT32)


def topk_k_int32(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    inits = {t.name: t.data_type for t in after.graph.initializer}
    casts = {n.output[0] for n in after.graph.node if n.op_type == "Cast" and
             helper.get_attribute_value(n.attribute[0]) == TensorProto.INT32}
    return sum(1 for n in after.graph.node if n.op_type == "TopK" and
               (inits.get(n.input[1]) == TensorProto.INT32 or n.input[1] in casts))


def nearest_resizes(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    return sum(1 for n in after.graph.node if n.op_type == "Resize" and
               any(a.name == "mode" and a.s == b"nearest" for a in n.attribute))


CASES: list[Case] = [
    Case("conv1d_to_conv2d", {}, build_conv1d, 2, "KnowledgeConv1d2Conv2d", conv_weights_4d),
    Case("merge_slices", {}, build_merge_slices, 3, "KnowledgeMergeConsecutiveSlice", fewer("Slice")),
    Case("merge_concats", {}, build_merge_concats, 4, "KnowledgeMergeConsecutiveConcat", fewer("Concat")),
    Case("merge_casts", {}, build_merge_casts, 5, "KnowledgeMergeCasts", fewer("Cast")),
    Case("cast_int64_to_int32", {}, build_cast_int64, 6, "KnowledgeTypeCast", int32_ops),
    Case("gather_to_split", {}, build_gather_to_split, 7, "KnowledgeGatherToSplit", fewer("Gather", 3)),
    Case("slice_to_split", {}, build_slice_to_split, 4, None, fewer("Slice", 2)),
    Case("fold_slice_into_conv", {}, build_fold_slice, 3, None, fewer("Slice")),
    Case("bn_to_mul_add", {}, build_bn_to_mul_add, 4, "KnowledgeBNFolding", fewer("BatchNormalization")),
    Case("reflect_pad_to_slices", {}, build_reflect_pad, 3, "KnowledgeModifyReflectionPad", fewer("Pad")),
    Case("topk_fix", {}, build_topk, 2, "KnowledgeTopkFix", topk_k_int32),
    Case("empty_slice_fix", {}, build_empty_slice, 3, "KnowledgeEmptySliceFix", fewer("Slice")),
    Case("resize_nearest", {"preset": "keep"}, build_resize, 2, "KnowledgeResizeModeToNearest", nearest_resizes),
]


# -- cases of the TransData-shape passes (avgpool_split, split_large_kernel_conv, fuse_bn_into_conv,
#    align_channels, convert_opset, adaptive_pool_to_fixed); output_dtype has no pattern to repeat


def build_avgpool(units: int) -> onnx.ModelProto:
    c = Chain([1, 2, 32, 64])  # ICNet's bin-1 pool at 1024x2048, summed so each one is live
    acc = None
    for _ in range(units):
        p = c.op("AveragePool", ["x"], kernel_shape=[32, 64], strides=[32, 64])[0]
        acc = p if acc is None else c.op("Add", [acc, p])[0]
    c.x = acc
    return c.model()


def build_large_kernel(units: int) -> onnx.ModelProto:
    # unpadded, each reading the input, summed: auto-optimizer's rule fails on padded ones (a kernel slice that
    # needs no input slice gets a Slice with empty float starts; shape inference fails and it rolls back)
    c = Chain([1, 2, 300])
    rng = np.random.default_rng(0)
    acc = None
    for _ in range(units):
        w = c.const((rng.standard_normal((2, 2, 257)) * 0.04).astype(F32), "w")
        # kernel_shape and pads as torch writes them (auto-optimizer reads both and fails without them)
        y = c.op("Conv", ["x", w], kernel_shape=[257], pads=[0, 0])[0]
        acc = y if acc is None else c.op("Add", [acc, y])[0]
    c.x = acc
    return c.model()


def build_conv_bn(units: int) -> onnx.ModelProto:
    c = Chain([1, 4, 8, 8])
    rng = np.random.default_rng(0)
    for _ in range(units):
        w = c.const((rng.standard_normal((4, 4, 3, 3)) * 0.2).astype(F32), "w")
        stats = [c.const((rng.random(4) + 0.5).astype(F32), "s"), c.const(rng.standard_normal(4).astype(F32), "b"),
                 c.const(rng.standard_normal(4).astype(F32), "m"), c.const((rng.random(4) + 0.5).astype(F32), "v")]
        conv = c.op("Conv", [c.x, w], pads=[1, 1, 1, 1])[0]
        c.x = c.op("Relu", [c.op("BatchNormalization", [conv, *stats])[0]])[0]
    return c.model()


def build_unaligned(units: int) -> onnx.ModelProto:
    c = Chain([1, 18, 8, 8])  # HRNet-W18's branch width
    rng = np.random.default_rng(0)
    for _ in range(units):
        w = c.const((rng.standard_normal((18, 18, 3, 3)) * 0.08).astype(F32), "w")
        c.x = c.op("Relu", [c.op("Conv", [c.x, w], pads=[1, 1, 1, 1])[0]])[0]
    return c.model()


def build_split13(units: int) -> onnx.ModelProto:
    c = Chain([1, 6])
    for _ in range(units):
        a, b = c.op("Split", [c.x, c.const(np.array([2, 4], I64), "sp")], n_out=2, axis=1)
        c.x = c.op("Concat", [b, a], axis=1)[0]
    model = c.model(opset=13)
    return model


def build_adaptive(units: int) -> onnx.ModelProto:
    c = Chain([1, 1, 8, 16])  # ICNet's bin-3 cells on the 8x16 map of a 256x512 input

    def cells(x: str, axis: int, size: int) -> str:
        means = []
        for i in range(3):
            start, end = (i * size) // 3, -((-(i + 1) * size) // 3)
            cut = c.op("Slice", [x, c.const(np.array([start], I64), "st"), c.const(np.array([end], I64), "en"),
                                 c.const(np.array([axis], I64), "ax")])[0]
            means.append(c.op("ReduceMean", [cut], axes=[axis], keepdims=1)[0])
        return c.op("Concat", means, axis=axis)[0]

    acc = None
    for _ in range(units):
        p = cells(cells("x", 2, 8), 3, 16)
        acc = p if acc is None else c.op("Add", [acc, p])[0]
    c.x = acc
    return c.model()


def big_pools(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    def count(m: onnx.ModelProto) -> int:
        return sum(1 for n in m.graph.node if n.op_type == "AveragePool" and
                   np.prod(next(a.ints for a in n.attribute if a.name == "kernel_shape")) >= 255)
    return count(before) - count(after)


def large_kernels(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    def count(m: onnx.ModelProto) -> int:
        dims = {t.name: list(t.dims) for t in m.graph.initializer}
        return sum(1 for n in m.graph.node if n.op_type == "Conv" and max(dims.get(n.input[1], [0])[2:]) > 192)
    return count(before) - count(after)


def padded_convs(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    dims = {t.name: list(t.dims) for t in after.graph.initializer}
    return sum(1 for n in after.graph.node if n.op_type == "Conv" and dims.get(n.input[1], [0])[0] % 16 == 0)


def split_attrs(before: onnx.ModelProto, after: onnx.ModelProto) -> int:
    return sum(1 for n in after.graph.node if n.op_type == "Split" and len(n.input) == 1)


CASES += [
    Case("avgpool_split", {}, build_avgpool, 2, "KnowledgeAvgPoolSplit", big_pools),
    Case("split_large_kernel_conv", {}, build_large_kernel, 2, "KnowledgeSplitLargeKernelConv", large_kernels),
    Case("fuse_bn_into_conv", {}, build_conv_bn, 3, None, fewer("BatchNormalization")),
    Case("align_channels", {}, build_unaligned, 2, None, padded_convs),
    Case("convert_opset", {}, build_split13, 2, None, split_attrs),
    Case("adaptive_pool_to_fixed", {}, build_adaptive, 15, None, fewer("Concat", 2)),
]


# -- measuring -------------------------------------------------------------------------------------


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_ours(case: Case, src: Path, dst: Path, repeat: int) -> tuple[float, float]:
    """(load + pass + save seconds, pass-only seconds), best of ``repeat``."""
    from surgery.passes import make_pass

    from surgery.graph import load_model, save_model

    p = make_pass(case.pass_name, case.options)
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t0 = time.perf_counter()
        model = load_model(src)
        t1 = time.perf_counter()
        p(model)
        t2 = time.perf_counter()
        save_model(model, dst)
        t3 = time.perf_counter()
        if t3 - t0 < best[0]:
            best = (t3 - t0, t2 - t1)
    return best


def run_ao(python: str, knowledge: str, src: Path, dst: Path, repeat: int, timeout: float) -> dict:
    try:
        proc = subprocess.run([python, str(DRIVER), knowledge, str(src), str(dst), "--repeat", str(repeat)],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("{")), None)
    if line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}
    return json.loads(line)


def outputs(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray] | str:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # auto-optimizer leaves unused initializers behind: one warning each
    try:
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return sess.run(None, feed)
    except Exception as exc:  # a non-standard result (topk_fix) does not load: say so
        return f"does not run ({type(exc).__name__})"


def max_diff(a: list[np.ndarray] | str, b: list[np.ndarray] | str) -> str:
    if isinstance(a, str) or isinstance(b, str):
        return "n/a"
    worst = max(float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max(initial=0.0))
                for x, y in zip(a, b, strict=True))
    return f"{worst:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="graph sizes in nodes (approximately)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--passes", default="", help="only these passes (comma-separated)")
    parser.add_argument("--ait-python", default=os.environ.get("AIT_PYTHON", "/work/ait-venv/bin/python"),
                        help="the Python of a venv with ait-surgeon 0.1.1 (auto-optimizer)")
    parser.add_argument("--no-ait", action="store_true", help="skip auto-optimizer")
    parser.add_argument("--ao-timeout", type=float, default=900.0, help="seconds before an auto-optimizer run is cut")
    parser.add_argument("--ao-budget", type=float, default=600.0,
                        help="skip an auto-optimizer run whose time, extrapolated quadratically from the previous "
                             "size, passes this (its matcher grows with the square of the graph)")
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = {p for p in args.passes.split(",") if p}
    unknown = wanted - {c.pass_name for c in CASES}
    if unknown:
        sys.exit(f"bench_passes: no case for {', '.join(sorted(unknown))}")
    ao = None if args.no_ait or not Path(args.ait_python).exists() else args.ait_python
    if ao is None:
        print(f"auto-optimizer: skipped ({'--no-ait' if args.no_ait else f'no {args.ait_python}'})")
    tmp = Path(tempfile.mkdtemp(prefix="bench-passes-"))
    print(f"{'pass':<22} {'nodes':>7} {'load+save':>9} {'ours':>8} {'ratio':>6} {'pass only':>9} {'sites':>6} | "
          f"{'knowledge':<32} {'AO total':>9} {'AO/ours':>7} {'AO sites':>8} | "
          f"{'ours-in':>7} {'AO-in':>7} {'ours-AO':>7}")
    scaling: dict[str, list[tuple[int, float]]] = {}
    ao_rate: dict[str, float] = {}  # seconds per node², from the last size auto-optimizer ran at
    ao_scaling: dict[str, list[tuple[int, float]]] = {}
    for case in CASES:
        if wanted and case.pass_name not in wanted:
            continue
        for size in sizes:
            units = max(1, size // case.unit_nodes)
            model = case.build(units)
            n_nodes = len(model.graph.node)
            src = tmp / f"{case.pass_name}_{n_nodes}.onnx"
            onnx.save(model, src)

            def load_save(src: Path = src) -> None:
                onnx.save(onnx.load(src), tmp / "copy.onnx")

            base = best_of(load_save, args.repeat)
            ours_path = tmp / f"{case.pass_name}_{n_nodes}.ours.onnx"
            total, pass_only = run_ours(case, src, ours_path, args.repeat)
            scaling.setdefault(case.pass_name, []).append((n_nodes, total))
            ours_model = onnx.load(ours_path)
            ours_sites = case.sites(model, ours_model)
            feed = {"x": np.random.default_rng(0).standard_normal(
                [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]).astype(F32)}
            ref, ours_out = outputs(model, feed), outputs(ours_model, feed)
            ao_cols = f"{case.knowledge or '(none)':<32} {'—':>9} {'—':>7} {'—':>8}"
            ao_out: list[np.ndarray] | str = "n/a"
            estimate = ao_rate.get(case.pass_name, 0.0) * n_nodes ** 2
            if ao is not None and case.knowledge and estimate > args.ao_budget:
                ao_cols = f"{case.knowledge:<32} skipped (est. {estimate:.0f} s > --ao-budget)"
            elif ao is not None and case.knowledge:
                ao_path = tmp / f"{case.pass_name}_{n_nodes}.ao.onnx"
                r = run_ao(ao, case.knowledge, src, ao_path, args.repeat, args.ao_timeout)
                if "total" in r:
                    ao_rate[case.pass_name] = r["total"] / n_nodes ** 2
                if "error" in r:
                    ao_cols = f"{case.knowledge:<32} failed: {r['error'][:70]}"
                else:
                    ao_scaling.setdefault(case.pass_name, []).append((n_nodes, r["total"]))
                    ao_model = onnx.load(ao_path)
                    ao_out = outputs(ao_model, feed)
                    ao_sites = case.sites(model, ao_model) if r["applied"] else 0
                    ao_cols = (f"{case.knowledge:<32} {r['total']:>8.3f}s {r['total'] / total:>6.1f}x "
                               f"{ao_sites:>8}")
            print(f"{case.pass_name:<22} {n_nodes:>7} {base:>8.3f}s {total:>7.3f}s {total / base:>5.1f}x "
                  f"{pass_only:>8.3f}s {ours_sites:>6} | {ao_cols} | {max_diff(ours_out, ref):>7} "
                  f"{max_diff(ao_out, ref):>7} {max_diff(ours_out, ao_out):>7}", flush=True)
    for name, rows in scaling.items():
        if len(rows) > 1:
            (n0, t0), (n1, t1) = rows[0], rows[-1]
            line = f"scaling {name}: {n0} → {n1} nodes ({n1 / n0:.0f}x): ours {t1 / t0:.1f}x"
            ao_rows = ao_scaling.get(name, [])
            if len(ao_rows) > 1:
                (m0, a0), (m1, a1) = ao_rows[0], ao_rows[-1]
                line += f"; auto-optimizer {a1 / a0:.1f}x over {m0} → {m1} nodes"
            print(line)


if __name__ == "__main__":
    main()
