"""What the editors of one model share (names, lazily inferred types) and the read-only view of an
enclosing graph that a subgraph's editor reads constants and types through."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")

# numpy_helper's converters cost tens of microseconds per tensor; the small raw tensors rules read and
# write by the thousand (Slice bounds, shapes, scales) take this shortcut on little-endian hosts
_RAW_TYPES = {onnx.TensorProto.INT64: np.dtype("<i8"), onnx.TensorProto.INT32: np.dtype("<i4"),
              onnx.TensorProto.FLOAT: np.dtype("<f4"), onnx.TensorProto.DOUBLE: np.dtype("<f8"),
              onnx.TensorProto.FLOAT16: np.dtype("<f2")}
_RAW_ENUMS = {v: k for k, v in _RAW_TYPES.items()}
_LITTLE = sys.byteorder == "little"


def tensor_value(t: onnx.TensorProto) -> np.ndarray:
    """A TensorProto's value (a fast path for raw int64/int32/float tensors)."""
    dtype = _RAW_TYPES.get(t.data_type)
    if _LITTLE and dtype is not None and t.raw_data and t.data_location != onnx.TensorProto.EXTERNAL:
        return np.frombuffer(t.raw_data, dtype).reshape(tuple(t.dims))
    return numpy_helper.to_array(t)


def tensor_proto(value: np.ndarray, name: str) -> onnx.TensorProto:
    """A TensorProto of ``value`` (a fast path for the common dtypes)."""
    value = np.asarray(value)
    enum = _RAW_ENUMS.get(value.dtype.newbyteorder("<")) if value.dtype.byteorder in "=<|" else None
    if _LITTLE and enum is not None:
        return onnx.TensorProto(name=name, data_type=enum, dims=value.shape,
                                raw_data=np.ascontiguousarray(value).tobytes())
    return numpy_helper.from_array(value, name)


class _ModelState:
    """What every graph of one model shares: the name pool, lazily inferred types, the opset."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)
        self._names: set[str] | None = None
        self._inferred: dict[str, onnx.TypeProto] | None = None

    @property
    def names(self) -> set[str]:
        if self._names is None:
            names: set[str] = set()
            for g in _all_graphs(self.model.graph):
                names.update(v.name for v in g.input)
                names.update(v.name for v in g.output)
                names.update(t.name for t in g.initializer)
                for n in g.node:
                    names.update(n.output)
                    if n.name:
                        names.add(n.name)
            self._names = names
        return self._names

    def inferred(self) -> dict[str, onnx.TypeProto]:
        """Types from onnx shape inference over the whole model, computed once (weights' bytes left out)."""
        if self._inferred is None:
            self._inferred = _infer_types(self.model)
        return self._inferred


def _all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_graphs(g)


_BIG_TENSOR = 1 << 16


def _infer_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    # Shape inference serialises the model: move large weights' bytes out meanwhile (their dims stay),
    # so a model near 2 GB still fits and a big one costs no copy of its weights.
    parked: list[tuple[onnx.TensorProto, bytes]] = []
    for t in model.graph.initializer:
        if len(t.raw_data) > _BIG_TENSOR:
            parked.append((t, t.raw_data))
            t.ClearField("raw_data")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference failing is not the pass's failure: types stay unknown
        inferred = None
    finally:
        for t, data in parked:
            t.raw_data = data
    out: dict[str, onnx.TypeProto] = {}
    if inferred is not None:
        for g in _all_graphs(inferred.graph):
            for v in (*g.value_info, *g.output, *g.input):
                if v.type.HasField("tensor_type"):
                    out.setdefault(v.name, v.type)
    return out


class _Scope:
    """Read-only view of an enclosing graph, for constants and types a subgraph reads from outside."""

    def __init__(self, graph: onnx.GraphProto, state: _ModelState, parent: _Scope | None):
        self.state = state
        self.parent = parent
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {v.name for v in graph.input}
        self.constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
        self.value_info = {v.name: v for v in (*graph.value_info, *graph.input, *graph.output)}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.constants:
            return _constant_node_value(self.constants[name])
        if name in self.initializers:
            return None if name in self.inputs else tensor_value(self.initializers[name])
        return self.parent.constant(name) if self.parent is not None else None

    def _type(self, name: str) -> onnx.TypeProto | None:
        v = self.value_info.get(name)
        if v is not None and v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            return v.type
        return self.state.inferred().get(name)

    def dtype(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        t = self._type(name)
        if t is None:
            return None if self.parent is None else self.parent.dtype(name)
        return t.tensor_type.elem_type or None

    def shape(self, name: str) -> tuple[int | str | None, ...] | None:
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        t = self._type(name)
        if t is None or not t.tensor_type.HasField("shape"):
            return None if self.parent is None else self.parent.shape(name)
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in t.tensor_type.shape.dim)


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
            return tensor_value(a.t)
        if a.name == "value_int":
            return np.array(a.i, np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), np.int64)
        if a.name == "value_float":
            return np.array(a.f, np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), np.float32)
    return None  # sparse or string constants: not read as arrays here
