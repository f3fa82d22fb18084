"""Numeric parity on onnxruntime: samples, sessions and Polygraphy-style comparisons.

An element mismatches when both its absolute error exceeds ``atol`` and its relative
error exceeds ``rtol`` (Polygraphy's elementwise rule; defaults 1e-5 each). Non-finite
values match only their like: the same infinity, or NaN, at the same place; a value that
is non-finite on one side only is a mismatch and is counted apart (``nonfinite``).
String and bool outputs are compared by equality.

Seeded samples rotate through named distributions, because a branch that is live only for
negative inputs (every normalised image has them) is never exercised by [0, 1):

- ``normal``: standard normal;
- ``uniform``: uniform in [0, 1) (Polygraphy's range);
- ``image``: a smooth random picture in [0, 1) normalised with the ImageNet mean and std.

Integer inputs stay inside the range the graph implies (a Gather's axis size, a OneHot's
depth), else in [0, 2).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery import validate
from surgery.errors import UsageError
from surgery.graph import is_large, runtime_source
from surgery.shapes import InputSpec, Shape, is_static, shapes_at
from surgery.shapes import model_inputs as model_inputs  # re-exported: parity reads inputs this way

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
DISTRIBUTIONS = ("normal", "uniform", "image")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INT_RANGE = (0, 2)
# ops that pass an integer input's values through unchanged (slot 0), so a Gather after them still bounds it
_VALUE_PRESERVING = frozenset({"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})


def resolve_shapes(specs: list[InputSpec], given: dict[str, Shape] | None = None) -> dict[str, tuple[int, ...]]:
    """Concrete shapes for verification: :func:`surgery.shapes.shapes_at` with no batch asked for."""
    return shapes_at(specs, None, given)


# ---------------------------------------------------------------------------
# samples


def _static_dims(graph: onnx.GraphProto) -> dict[str, list[int | None]]:
    """Known dims of tensors (initializers, inputs, value_info): None where a dim is symbolic."""
    dims: dict[str, list[int | None]] = {}
    for vi in (*graph.value_info, *graph.input, *graph.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
    for t in graph.initializer:
        dims[t.name] = list(t.dims)
    return dims


def _literal(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for t in graph.initializer:
        if t.name == name:
            return onnx.numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    return onnx.numpy_helper.to_array(a.t)
    return None


def integer_ranges(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """``[low, high)`` for each integer graph input whose values the graph bounds (Gather indices, OneHot)."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    ints = [vi.name for vi in graph.input if vi.name not in inits and vi.type.HasField("tensor_type")
            and vi.type.tensor_type.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32,
                                                   onnx.TensorProto.INT16, onnx.TensorProto.INT8,
                                                   onnx.TensorProto.UINT8, onnx.TensorProto.UINT16,
                                                   onnx.TensorProto.UINT32, onnx.TensorProto.UINT64)]
    if not ints:
        return {}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for slot, x in enumerate(node.input):
            if x:
                consumers.setdefault(x, []).append((node, slot))
    dims = _static_dims(graph)
    ranges: dict[str, tuple[int, int]] = {}
    for name in ints:
        high: int | None = None
        stack, seen = [name], set()
        while stack:
            tensor = stack.pop()
            if tensor in seen:
                continue
            seen.add(tensor)
            for node, slot in consumers.get(tensor, []):
                bound = None
                if node.op_type in _VALUE_PRESERVING and slot == 0:
                    stack.extend(o for o in node.output if o)
                elif node.op_type in ("Gather", "GatherElements") and slot == 1:
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    data = dims.get(node.input[0])
                    if data and -len(data) <= axis < len(data):
                        bound = data[axis]
                elif node.op_type == "OneHot" and slot == 0 and len(node.input) > 1:
                    depth = _literal(graph, node.input[1])
                    bound = int(depth.reshape(-1)[0]) if depth is not None and depth.size else None
                if bound is not None and bound > 0:
                    high = bound if high is None else min(high, bound)
        if high is not None:
            ranges[name] = (0, high)
    return ranges


def _image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth random picture in [0, 1) (blocks of colour plus grain), ImageNet-normalised on its channel axis."""
    if len(shape) == 4 and shape[1] in (1, 3):
        channel_axis = 1
    elif len(shape) >= 3 and shape[-1] == 3:
        channel_axis = len(shape) - 1
    else:
        channel_axis = None
    if len(shape) >= 2:
        # coarse cells of 4x4 (or fewer) pixels on the last two axes, repeated up: regions like objects in a picture
        *lead, h, w = shape
        ch, cw = max(1, math.ceil(h / 4)), max(1, math.ceil(w / 4))
        coarse = rng.random((*lead, ch, cw))
        x = np.repeat(np.repeat(coarse, 4, axis=-2), 4, axis=-1)[..., :h, :w]
        x = np.clip(0.85 * x + 0.15 * rng.random(shape), 0.0, 0.999)
    else:
        x = rng.random(shape)
    if channel_axis is None or shape[channel_axis] != 3:
        return (x - 0.449) / 0.226  # the ImageNet channel averages
    view = [1] * len(shape)
    view[channel_axis] = 3
    mean = np.asarray(IMAGENET_MEAN).reshape(view)
    std = np.asarray(IMAGENET_STD).reshape(view)
    return (x - mean) / std


def random_feed(specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], seed: int,
                distribution: str = "uniform",
                int_ranges: dict[str, tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
    """One seeded random sample.

    Floats follow ``distribution`` (see the module docstring); integers are uniform in the
    input's ``int_ranges`` entry, else in [0, 2); bools are random; strings are distinct words.
    """
    if distribution not in DISTRIBUTIONS:
        raise UsageError(f"sample distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    # a dim that asks for petabytes is a usage error naming it, not a MemoryError (floats are drawn as float64)
    validate.input_bytes({s.name: shapes[s.name] for s in specs}, {s.name: max(8, s.dtype.itemsize) for s in specs},
                         what="the generated samples")
    rng = np.random.default_rng(seed)
    ranges = int_ranges or {}
    feed = {}
    for spec in specs:
        shape = shapes[spec.name]
        if spec.dtype == np.bool_:
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(spec.dtype, np.integer):
            low, high = ranges.get(spec.name, DEFAULT_INT_RANGE)
            feed[spec.name] = rng.integers(low, high, size=shape).astype(spec.dtype)
        elif spec.dtype.kind in "OUS":
            words = np.array([f"s{seed}_{k}" for k in range(math.prod(shape))], dtype=object)
            feed[spec.name] = words.reshape(shape)
        elif distribution == "normal":
            feed[spec.name] = rng.standard_normal(size=shape).astype(spec.dtype)
        elif distribution == "image":
            feed[spec.name] = _image(rng, shape).astype(spec.dtype)
        else:
            feed[spec.name] = rng.random(size=shape, dtype=np.float64).astype(spec.dtype)
    return feed


@dataclass
class Sample:
    """One sample: the arrays fed, and where they came from (for the record)."""

    feed: dict[str, np.ndarray]
    info: dict[str, Any]


def random_samples(specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], *, count: int, seed: int,
                   distributions: Sequence[str] = DISTRIBUTIONS,
                   int_ranges: dict[str, tuple[int, int]] | None = None) -> list[Sample]:
    """``count`` seeded samples; sample k has seed ``seed + k`` and distribution ``distributions[k % len]``."""
    out = []
    for k in range(count):
        dist = distributions[k % len(distributions)]
        out.append(Sample(random_feed(specs, shapes, seed + k, dist, int_ranges),
                          {"source": "random", "distribution": dist, "seed": seed + k}))
    return out


def fits(spec: InputSpec, shape: Sequence[int]) -> bool:
    """The model input ``spec`` accepts an array of ``shape`` (same rank, equal static dims)."""
    return len(spec.shape) == len(shape) and all(not is_static(d) or d == n for d, n in zip(spec.shape, shape,
                                                                                             strict=True))


def load_feeds(path: str | os.PathLike, specs: list[InputSpec]) -> list[dict[str, np.ndarray]]:
    """Real samples from an .npz: one array per input name, optionally with a leading samples axis."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--inputs file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--inputs {path} is not a readable .npz file ({exc})") from None
    names = [s.name for s in specs]
    missing = [n for n in names if n not in data.files]
    if missing:
        raise UsageError(f"--inputs {path} has no array for input {missing[0]!r} (arrays: {', '.join(data.files)})")
    arrays = {s.name: np.asarray(data[s.name]).astype(s.dtype, copy=False) for s in specs}
    stacked = {n: a.ndim == len(s.shape) + 1 for (n, a), s in zip(arrays.items(), specs, strict=True)}
    if all(stacked.values()):
        count = {a.shape[0] for a in arrays.values()}
        if len(count) != 1:
            raise UsageError(f"--inputs {path}: arrays have different sample counts {sorted(count)}")
        return [{n: a[k] for n, a in arrays.items()} for k in range(count.pop())]
    return [arrays]


# ---------------------------------------------------------------------------
# models and sessions


def with_input_shapes(model: onnx.ModelProto | bytes, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs take ``shapes``: input dims set, stale value_info and output dims cleared.

    How the model before a pass is run at the shapes a pass set (``fix_shapes``): onnxruntime
    checks the feed against the declared dims, and inferred shapes of the old sizes would clash.
    """
    copy = onnx.ModelProto()
    if isinstance(model, bytes):
        copy.ParseFromString(model)
    else:
        copy.CopyFrom(model)
    g = copy.graph
    for vi in g.input:
        if vi.name in shapes and vi.type.HasField("tensor_type"):
            shape = vi.type.tensor_type.shape
            shape.ClearField("dim")
            for n in shapes[vi.name]:
                shape.dim.add().dim_value = int(n)
    del g.value_info[:]
    for k, vi in enumerate(g.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            for axis, d in enumerate(t.shape.dim):
                d.Clear()
                d.dim_param = f"out{k}_d{axis}"
    return copy


_ORT_HEAD = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_NODE = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message: ")
_ORT_SOURCE = re.compile(r"/onnxruntime_src/\S+:\d+ [^(]*\([^)]*\)( const)? ")
_ORT_ASSERT = re.compile(r"(?<=: )[^.:]*? was false\. ")


def ort_message(exc: BaseException, limit: int = 300) -> str:
    """onnxruntime's error as one readable line: the node and the reason, without source paths and C++ signatures."""
    text = " ".join(str(exc).split())
    text = _ORT_HEAD.sub("", text)
    text = _ORT_NODE.sub(lambda m: f"{m.group(1)} node {m.group(2)!r}: " if m.group(2) else f"{m.group(1)} node: ",
                         text)
    text = _ORT_ASSERT.sub("", _ORT_SOURCE.sub("", text))
    return text[:limit] if text else type(exc).__name__


class Session:
    """An onnxruntime CPU session over a model given as bytes (or a temp path above 2 GB).

    onnxruntime's own logging is silenced: every failure comes back as a RuntimeError whose
    message (:func:`ort_message`) the instruments report where it belongs.
    """

    def __init__(self, model: onnx.ModelProto | bytes, extra_outputs: list[str] | None = None):
        import onnxruntime as ort

        self._tmp: tempfile.TemporaryDirectory | None = None
        if extra_outputs:
            proto = model if isinstance(model, onnx.ModelProto) else onnx.ModelProto.FromString(model)
            copy = onnx.ModelProto()
            copy.CopyFrom(proto)
            present = {o.name for o in copy.graph.output}
            for name in extra_outputs:
                if name not in present:
                    copy.graph.output.append(onnx.ValueInfoProto(name=name))
            model = copy
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 4
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        self._timed_out: str | None = None
        source: Any
        if isinstance(model, bytes):
            source = model
        elif not is_large(model):
            source = model.SerializeToString()
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="surgery-verify-")
            source = runtime_source(model, self._tmp.name)  # leaves ``model`` whole (onnx.save_model would not)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeError(f"onnxruntime cannot load the model: {ort_message(exc)}") from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray], names: list[str] | None = None) -> dict[str, Any]:
        wanted = names or self.output_names
        if self._timed_out:  # a runaway (a Loop of 2**31 trips) runs away on every sample: say so at once
            raise RuntimeError(self._timed_out)
        # a watchdog: onnxruntime stops a run whose RunOptions.terminate is set (a runaway Loop, say)
        limit = validate.max_run_seconds()
        timer = threading.Timer(limit, setattr, (self._run_options, "terminate", True))
        timer.daemon = True
        timer.start()
        try:
            values = self.session.run(wanted, feed, self._run_options)
        except Exception as exc:
            if self._run_options.terminate:
                self._timed_out = (f"onnxruntime did not finish one sample in {limit:g} s (SURGERY_VERIFY_TIMEOUT "
                                   "sets the limit)")
                raise RuntimeError(self._timed_out) from None
            raise RuntimeError(f"onnxruntime failed to run the model: {ort_message(exc)}") from exc
        finally:
            timer.cancel()
            self._run_options.terminate = False
        return dict(zip(wanted, values, strict=True))


# ---------------------------------------------------------------------------
# comparison


@dataclass
class OutputDiff:
    """Per-output comparison figures over all samples.

    ``nonfinite`` counts elements that are non-finite on one side only (or inf of the other
    sign, or inf against NaN); they are mismatches and ``note`` names them. ``cosine`` is None
    for outputs compared by equality (strings, bools).
    """

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    cosine: float | None = 1.0
    mismatches: int = 0
    nonfinite: int = 0
    elements: int = 0
    passed: bool = True
    dtype: str = ""
    shape: list[int] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _arrays(value: Any) -> list[np.ndarray]:
    """An output as arrays: a tensor is one, a sequence (onnxruntime gives a list) is each of its items."""
    if isinstance(value, (list, tuple)):
        return [np.asarray(v) for v in value]
    return [np.asarray(value)]


def compare_arrays(name: str, expected: list[Any], actual: list[Any], atol: float, rtol: float) -> OutputDiff:
    """Compare one output over samples: Polygraphy's rule for numbers, equality for strings and bools."""
    diff = OutputDiff(name=name)
    dot = na = nb = 0.0
    by_equality = False
    for e_value, a_value in zip(expected, actual, strict=True):
        e_items, a_items = _arrays(e_value), _arrays(a_value)
        if len(e_items) != len(a_items):
            diff.passed = False
            diff.note = f"sequence of {len(e_items)} tensors became {len(a_items)}"
            return diff
        for e, a in zip(e_items, a_items, strict=True):
            diff.dtype, diff.shape = str(a.dtype), list(a.shape)
            if e.shape != a.shape:
                diff.passed = False
                diff.note = f"shape {list(e.shape)} became {list(a.shape)}"
                return diff
            diff.elements += int(a.size)
            if e.dtype.kind in "OUSb" or a.dtype.kind in "OUSb":
                by_equality = True
                diff.mismatches += int(np.count_nonzero(e != a))
                continue
            dot_k, na_k, nb_k = _compare_numbers(diff, e, a, atol, rtol)
            dot, na, nb = dot + dot_k, na + na_k, nb + nb_k
    if by_equality:
        diff.cosine = None
        diff.note = diff.note or "compared by equality"
    elif na == 0 and nb == 0:
        diff.cosine = 1.0
    elif na == 0 or nb == 0:
        diff.cosine = 0.0
    else:
        diff.cosine = dot / (math.sqrt(na) * math.sqrt(nb))
    if diff.nonfinite:
        diff.note = (f"{diff.nonfinite} element{'s' if diff.nonfinite != 1 else ''} non-finite on one side only"
                     + (f"; {diff.note}" if diff.note else ""))
    diff.passed = diff.mismatches == 0
    return diff


def _compare_numbers(diff: OutputDiff, e: np.ndarray, a: np.ndarray, atol: float,
                     rtol: float) -> tuple[float, float, float]:
    """Fold one pair of numeric arrays into ``diff``; the cosine's partial sums over elements finite on both sides."""
    e64 = e.astype(np.float64, copy=False)
    a64 = a.astype(np.float64, copy=False)
    fe, fa = np.isfinite(e64), np.isfinite(a64)
    finite = fe & fa
    # both non-finite and alike: the same infinity, or NaN on both sides
    alike = ~fe & ~fa & ((np.isnan(e64) & np.isnan(a64)) | (e64 == a64))
    odd = ~finite & ~alike
    nonfinite = int(np.count_nonzero(odd))
    with np.errstate(invalid="ignore", over="ignore"):
        absdiff = np.where(finite, np.abs(a64 - e64), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        reldiff = np.where(absdiff == 0, 0.0, absdiff / np.abs(e64))
    reldiff = np.nan_to_num(reldiff, nan=np.inf, posinf=np.inf)
    if absdiff.size:
        diff.max_abs = max(diff.max_abs, float(absdiff.max()))
        diff.max_rel = max(diff.max_rel, float(reldiff.max()))
    diff.mismatches += int(np.count_nonzero((absdiff > atol) & (reldiff > rtol))) + nonfinite
    diff.nonfinite += nonfinite
    fe_v, fa_v = e64[finite].ravel(), a64[finite].ravel()
    return float(fe_v @ fa_v), float(fe_v @ fe_v), float(fa_v @ fa_v)


def join_rows(parts: Sequence[Any], target: Sequence[int], axis: int = 0) -> np.ndarray | None:
    """Outputs of samples run one at a time, joined along the output's batch ``axis``; None when that is not ``target``.

    An output that does not grow with the batch is returned as is when every part is the same
    (a batch-independent output). Otherwise None: its batch does not follow the input's. The
    axis is fixed by the caller (from the graph), never searched for: ``Reshape [1, -1]`` at
    batch 2 gives ``(1, 16)``, which two ``(1, 8)`` rows joined on axis 1 would also give.
    """
    arrays = [np.asarray(p) for p in parts]
    first = arrays[0]
    target = tuple(target)
    if len(arrays) == 1:
        return first if first.shape == target else None
    if any(a.shape != first.shape for a in arrays):
        return None
    if first.ndim and -first.ndim <= axis < first.ndim:
        grown = list(first.shape)
        grown[axis] *= len(arrays)
        if tuple(grown) == target:
            return np.concatenate(arrays, axis=axis)
    if first.shape == target and all(np.array_equal(a, first, equal_nan=a.dtype.kind == "f") for a in arrays[1:]):
        return first
    return None


def batch_axis(declared: Sequence[int | str] | None, symbols: set[str], *,
               before: Sequence[int | str] | None = None, sizes: tuple[int, int] | None = None) -> int:
    """The batch axis of an output, from the graph: the axis named by the inputs' batch symbol; else
    the one axis whose static size went from ``sizes[0]`` (``before``) to ``sizes[1]`` (``declared``);
    else 0. (mmseg's argmax output is ``1 x N x H x W``: its batch is axis 1.)
    """
    if declared:
        for axis, d in enumerate(declared):
            if isinstance(d, str) and d in symbols:
                return axis
        if before is not None and sizes is not None and len(before) == len(declared):
            moved = [a for a, (o, n) in enumerate(zip(before, declared, strict=True))
                     if o == sizes[0] and n == sizes[1] and o != n]
            if len(moved) == 1:
                return moved[0]
    return 0
