"""Every place a tensor can live in a model, and a model's size and skeleton without serialising it.

A ``TensorProto`` lives in graph initializers, in sparse initializers (values and indices),
in node attributes (``t``, ``tensors``, ``sparse_tensor``, ``sparse_tensors``: Constant and
any other op), and in all of these again inside every subgraph (If/Loop/Scan bodies, any
GRAPH attribute), every function and every training graph. External data, size and digest
code walks them all through :func:`iter_tensors`, so none of them can be forgotten.

Protobuf refuses to serialise a message of 2 GiB or more, and upb's ``ByteSize()``
serialises internally (seconds and a full copy on a 2 GB model before it fails), so sizes
here are computed from the tensors' declared shapes and the external-data table, and a
large model is hashed or written through its *skeleton*: a structural copy in which each
big tensor's data is replaced by a reference, made one tensor at a time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import onnx
from google.protobuf.message import EncodeError

A = onnx.AttributeProto
# the fields that hold a tensor's values (everything else is metadata: name, dims, type, ...)
DATA_FIELDS = frozenset({"raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data",
                         "uint64_data"})
_META_FIELDS = tuple(f for f in onnx.TensorProto.DESCRIPTOR.fields if f.name not in DATA_FIELDS)
_TYPED_ITEMSIZE = {"float_data": 4, "int32_data": 4, "int64_data": 8, "double_data": 8, "uint64_data": 8}
_TENSOR_ATTRS = (A.TENSOR, A.TENSORS, A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.GRAPH, A.GRAPHS)


class TensorSite:
    """A tensor, its role (dense, or a sparse tensor's values or indices) and where it lives, in words.

    ``where`` is built only when asked for (an error message): walking a model with tens of
    thousands of tensors must not format a sentence for each.
    """

    __slots__ = ("_describe", "role", "tensor")

    def __init__(self, tensor: onnx.TensorProto, describe: Callable[[], str], role: str = "dense"):
        self.tensor, self.role, self._describe = tensor, role, describe

    @property
    def where(self) -> str:
        return self._describe()


def _label(name: object) -> str:
    return repr(name) if isinstance(name, str) else repr(bytes(name)) if isinstance(name, bytes) else "''"


def iter_tensors(model: onnx.ModelProto) -> Iterator[TensorSite]:
    """Every TensorProto of ``model``: initializers, sparse initializers, tensor attributes, at every level."""
    yield from _graph_tensors(model.graph, "graph")
    for function in model.functions:
        yield from _nodes_tensors(function.node, f"function {_label(function.name)}")
    for k, info in enumerate(model.training_info):
        yield from _graph_tensors(info.initialization, f"training_info[{k}].initialization")
        yield from _graph_tensors(info.algorithm, f"training_info[{k}].algorithm")


def _graph_tensors(graph: onnx.GraphProto, where: str) -> Iterator[TensorSite]:
    for t in graph.initializer:
        yield TensorSite(t, lambda t=t: f"initializer {_label(t.name)} of {where}")
    for s in graph.sparse_initializer:
        yield TensorSite(s.values, lambda s=s: f"sparse initializer {_label(s.values.name)} (values) of {where}",
                         "sparse values")
        yield TensorSite(s.indices, lambda s=s: f"sparse initializer {_label(s.values.name)} (indices) of {where}",
                         "sparse indices")
    yield from _nodes_tensors(graph.node, where)


def _nodes_tensors(nodes: Iterator[onnx.NodeProto] | object, where: str) -> Iterator[TensorSite]:
    for node in nodes:  # type: ignore[attr-defined]
        if not node.attribute:
            continue
        for attr in node.attribute:
            if attr.type not in _TENSOR_ATTRS:
                continue

            def at(attr: onnx.AttributeProto = attr, node: onnx.NodeProto = node) -> str:
                return f"attribute {_label(attr.name)} of node {_label(node.name)} ({_label(node.op_type)}) in {where}"

            if attr.HasField("t"):
                yield TensorSite(attr.t, at)
            for t in attr.tensors:
                yield TensorSite(t, at)
            sparse = ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors)
            for sp in sparse:
                yield TensorSite(sp.values, lambda at=at: f"{at()} (sparse values)", "sparse values")
                yield TensorSite(sp.indices, lambda at=at: f"{at()} (sparse indices)", "sparse indices")
            if attr.HasField("g") or len(attr.graphs):
                sub = f"subgraph {_label(attr.name)} of node {_label(node.name)} in {where}"
                if attr.HasField("g"):
                    yield from _graph_tensors(attr.g, sub)
                for g in attr.graphs:
                    yield from _graph_tensors(g, sub)


@functools.cache
def itemsize(data_type: int) -> int:
    """Bytes per element of an ONNX dtype (0 for strings, unknown and sub-byte types)."""
    if data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return 0
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return 0


def declared_nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes the tensor's dims and dtype call for (0 when a dim is negative or the type has no fixed size)."""
    dims = tensor.dims
    if len(dims) and min(dims) < 0:
        return 0
    return math.prod(dims) * itemsize(tensor.data_type)


def external_entries(tensor: onnx.TensorProto) -> dict[str, object]:
    """The external-data table of a tensor, key → value (values may be ``bytes`` in a corrupt file)."""
    return {e.key: e.value for e in tensor.external_data}


def data_nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes of a tensor's values without reading them: the external ``length``, else its declared size.

    ``raw_data`` is measured by its declared size: reading the field copies it (upb has no
    zero-copy access), and a tensor whose raw bytes disagree with its dims fails in the runtime anyway.
    """
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        length = external_entries(tensor).get("length")
        if isinstance(length, str) and length.isdigit():
            return int(length)
        return declared_nbytes(tensor)
    if tensor.HasField("raw_data"):
        return declared_nbytes(tensor)
    total = sum(len(getattr(tensor, name)) * size for name, size in _TYPED_ITEMSIZE.items())
    if tensor.string_data:
        total += sum(len(s) for s in tensor.string_data)
    return total


def has_inline_data(tensor: onnx.TensorProto) -> bool:
    """Whether the tensor's values are in the message itself (not external)."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    return tensor.HasField("raw_data") or any(len(getattr(tensor, n)) for n in _TYPED_ITEMSIZE)


def tensor_meta(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """A copy of the tensor without its values (name, dims, dtype, segment, metadata...)."""
    out = onnx.TensorProto()
    for f in _META_FIELDS:
        if f.is_repeated:
            values = getattr(tensor, f.name)
            if len(values):
                getattr(out, f.name).extend(values)
        elif tensor.HasField(f.name):
            if f.message_type is not None:
                getattr(out, f.name).CopyFrom(getattr(tensor, f.name))
            else:
                setattr(out, f.name, getattr(tensor, f.name))
    return out


def tensor_data_bytes(tensor: onnx.TensorProto) -> bytes:
    """A tensor's values as raw little-endian bytes (``raw_data``, or the typed field converted)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor).tobytes()
    except (ValueError, TypeError) as exc:  # values that do not fill the dims, a dtype numpy cannot hold
        from surgery.errors import ModelLoadError

        dims = "x".join(map(str, tensor.dims)) or "scalar"
        raise ModelLoadError(f"tensor {tensor.name!r} ({dims}): its values do not match its dims and dtype "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


# ---------------------------------------------------------------------------
# skeletons: a structural copy with big tensors replaced, one tensor at a time

# message type -> fields through which tensors are reached (every other field is copied whole)
_CONTAINERS: dict[str, frozenset[str]] = {
    "ModelProto": frozenset({"graph", "functions", "training_info"}),
    "GraphProto": frozenset({"initializer", "sparse_initializer", "node"}),
    "FunctionProto": frozenset({"node"}),
    "TrainingInfoProto": frozenset({"initialization", "algorithm"}),
    "NodeProto": frozenset({"attribute"}),
    "AttributeProto": frozenset({"t", "tensors", "g", "graphs", "sparse_tensor", "sparse_tensors"}),
    "SparseTensorProto": frozenset({"values", "indices"}),
}

TensorFn = Callable[[onnx.TensorProto], onnx.TensorProto | None]


def skeleton(message: object, replace: TensorFn) -> object:
    """A copy of ``message`` in which each tensor ``t`` becomes ``replace(t)`` (None: copied as is).

    Nodes without tensor or graph attributes are copied whole in C; only the path down
    to tensors is walked in Python, so the copy never holds two copies of the weights.
    """
    return _skeleton(message, replace)


def _skeleton(msg, replace: TensorFn):
    kind = type(msg).DESCRIPTOR.name
    if kind == "TensorProto":
        new = replace(msg)
        if new is None:
            new = onnx.TensorProto()
            new.CopyFrom(msg)
        return new
    if kind == "NodeProto" and not any(a.type in _TENSOR_ATTRS for a in msg.attribute):
        out = onnx.NodeProto()
        out.CopyFrom(msg)
        return out
    walk = _CONTAINERS.get(kind)
    out = type(msg)()
    if walk is None:
        out.CopyFrom(msg)
        return out
    for fd, value in msg.ListFields():
        if fd.name in walk:
            if fd.is_repeated:
                container = getattr(out, fd.name)
                for item in value:
                    container.add().CopyFrom(_skeleton(item, replace))
            else:
                getattr(out, fd.name).CopyFrom(_skeleton(value, replace))
        elif fd.is_repeated:
            getattr(out, fd.name).extend(value)
        elif fd.message_type is not None:
            getattr(out, fd.name).CopyFrom(value)
        else:
            setattr(out, fd.name, value)
    return out


def total_data_nbytes(model: onnx.ModelProto) -> int:
    """Bytes of every tensor's values (declared sizes and the external-data table; nothing is read).

    The same tensors as :func:`iter_tensors`, walked without describing each: this runs on
    every size check of every model.
    """
    total = _graph_data(model.graph)
    for function in model.functions:
        total += _nodes_data(function.node)
    for info in model.training_info:
        total += _graph_data(info.initialization) + _graph_data(info.algorithm)
    return total


def _graph_data(graph: onnx.GraphProto) -> int:
    total = sum(data_nbytes(t) for t in graph.initializer)
    for sp in graph.sparse_initializer:
        total += data_nbytes(sp.values) + data_nbytes(sp.indices)
    return total + _nodes_data(graph.node)


def _nodes_data(nodes: object) -> int:
    total = 0
    for node in nodes:  # type: ignore[attr-defined]
        if not node.attribute:
            continue
        for attr in node.attribute:
            if attr.type not in _TENSOR_ATTRS:
                continue
            if attr.HasField("t"):
                total += data_nbytes(attr.t)
            total += sum(data_nbytes(t) for t in attr.tensors)
            for sp in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                total += data_nbytes(sp.values) + data_nbytes(sp.indices)
            if attr.HasField("g"):
                total += _graph_data(attr.g)
            total += sum(_graph_data(g) for g in attr.graphs)
    return total


def proto_nbytes(model: onnx.ModelProto, limit: int, data: int | None = None) -> int:
    """The model's serialised size (inline), computed without serialising it when it may reach ``limit``.

    Below half the limit in tensor data, ``ByteSize()`` is exact and safe; above it, the
    size is the skeleton's (tensor data stripped) plus the tensors' data sizes.

    Args:
        model: the model.
        limit: protobuf's limit (or a test's stand-in for it).
        data: :func:`total_data_nbytes`, when the caller has walked the tensors already.
    """
    if data is None:
        data = total_data_nbytes(model)
    if data < limit // 2:
        try:
            return model.ByteSize()
        except (EncodeError, ValueError):  # a huge non-tensor part: fall through to the skeleton
            pass
    try:
        return data + skeleton(model, tensor_meta).ByteSize()
    except (EncodeError, ValueError):  # gigabytes of names and doc strings: too big, whatever the exact size
        return max(data, limit)
