"""Numeric parity on onnxruntime: feeds, sessions and Polygraphy-style comparisons.

An element mismatches when both its absolute error exceeds ``atol`` and its relative
error exceeds ``rtol`` (Polygraphy's elementwise rule; defaults 1e-5 each).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery.errors import UsageError, first_line
from surgery.graph import EXTERNAL_DATA_THRESHOLD
from surgery.shapes import InputSpec, Shape, shapes_at
from surgery.shapes import model_inputs as model_inputs  # re-exported: parity reads inputs this way

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5


def resolve_shapes(specs: list[InputSpec], given: dict[str, Shape] | None = None) -> dict[str, tuple[int, ...]]:
    """Concrete shapes for verification: :func:`surgery.shapes.shapes_at` with no batch asked for."""
    return shapes_at(specs, None, given)


def random_feed(specs: list[InputSpec], shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """One seeded random sample: floats uniform in [0, 1), integers in [0, 1], bools random (Polygraphy's range)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in specs:
        shape = shapes[spec.name]
        if spec.dtype == np.bool_:
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(spec.dtype, np.integer):
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
        else:
            feed[spec.name] = rng.random(size=shape, dtype=np.float64).astype(spec.dtype)
    return feed


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


class Session:
    """An onnxruntime CPU session over a model given as bytes (or a temp path above 2 GB)."""

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
        options.log_severity_level = 3
        source: Any
        if isinstance(model, bytes):
            source = model
        elif model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
            source = model.SerializeToString()
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="surgery-verify-")
            path = Path(self._tmp.name) / "model.onnx"
            onnx.save_model(model, str(path), save_as_external_data=True, location="model.onnx.data")
            source = str(path)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeError(f"onnxruntime cannot load the model: {first_line(exc, 300)}") from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray], names: list[str] | None = None) -> dict[str, np.ndarray]:
        wanted = names or self.output_names
        try:
            values = self.session.run(wanted, feed)
        except Exception as exc:
            raise RuntimeError(f"onnxruntime failed to run the model: {first_line(exc, 300)}") from exc
        return dict(zip(wanted, values, strict=True))


@dataclass
class OutputDiff:
    """Per-output comparison figures over all samples."""

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    cosine: float = 1.0
    mismatches: int = 0
    elements: int = 0
    passed: bool = True
    dtype: str = ""
    shape: list[int] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def compare_arrays(name: str, expected: list[np.ndarray], actual: list[np.ndarray],
                   atol: float, rtol: float) -> OutputDiff:
    diff = OutputDiff(name=name)
    dot = na = nb = 0.0
    for e, a in zip(expected, actual, strict=True):
        diff.dtype = str(a.dtype)
        diff.shape = list(a.shape)
        if e.shape != a.shape:
            diff.passed = False
            diff.note = f"shape {list(e.shape)} became {list(a.shape)}"
            return diff
        e64 = e.astype(np.float64, copy=False)
        a64 = a.astype(np.float64, copy=False)
        both_nan = np.isnan(e64) & np.isnan(a64)
        absdiff = np.where(both_nan, 0.0, np.abs(a64 - e64))
        absdiff = np.nan_to_num(absdiff, nan=np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            reldiff = np.where(absdiff == 0, 0.0, absdiff / np.abs(e64))
        reldiff = np.nan_to_num(reldiff, nan=np.inf, posinf=np.inf)
        if absdiff.size:
            diff.max_abs = max(diff.max_abs, float(absdiff.max()))
            diff.max_rel = max(diff.max_rel, float(reldiff.max()))
        diff.mismatches += int(np.count_nonzero((absdiff > atol) & (reldiff > rtol)))
        diff.elements += int(absdiff.size)
        fe, fa = np.nan_to_num(e64.ravel()), np.nan_to_num(a64.ravel())
        dot += float(fe @ fa)
        na += float(fe @ fe)
        nb += float(fa @ fa)
    if na == 0 and nb == 0:
        diff.cosine = 1.0
    elif na == 0 or nb == 0:
        diff.cosine = 0.0
    else:
        diff.cosine = dot / (np.sqrt(na) * np.sqrt(nb))
    diff.passed = diff.mismatches == 0
    return diff
