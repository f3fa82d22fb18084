"""Graph I/O: load and save ONNX models safely, digest them, summarise them, index them.

Passes work directly on ``onnx.ModelProto`` with a :class:`GraphIndex` built in one
linear sweep. We measured an onnx-graphsurgeon import+export round trip at 20-25x the
cost of ``onnx.load`` + ``onnx.save`` on long chains (onnx-ir: 17-19x), which alone
would exceed our speed budget; editing the protobuf in place costs 2-4x.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from surgery.atomic import check_output_dir, write_bytes_atomic
from surgery.errors import ModelLoadError, ModelSaveError

# Protobuf refuses to serialise a message of 2 GiB or more; leave headroom for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2_000_000_000


@dataclass
class ModelFile:
    """A model read from or written to disk, with its content digest."""

    model: onnx.ModelProto
    path: Path | None
    digest: str
    nbytes: int


def _check_external_data(model: onnx.ModelProto, base: Path) -> None:
    base_resolved = base.resolve()
    for tensor in _external_tensors(model):
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if os.path.isabs(location) or (base_resolved not in target.parents and target != base_resolved):
            raise ModelLoadError(
                f"external data of tensor {tensor.name!r} points outside the model's folder: {location!r}"
            )
        if not target.is_file():
            raise ModelLoadError(f"external data file missing for tensor {tensor.name!r}: {target}")


def _hash_external_files(h: hashlib._Hash, model: onnx.ModelProto, base: Path) -> None:
    """Fold the external data files' contents into a model file's digest (weights are content too)."""
    locations = sorted({e.value for t in _external_tensors(model) for e in t.external_data if e.key == "location"})
    for location in locations:
        with open(base / location, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)


def _external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def load_model_file(path: str | os.PathLike, *, load_external_data: bool = True) -> ModelFile:
    """Read an ONNX file, with external data, and compute its digest.

    Raises:
        ModelLoadError: the file is missing, a folder, not ONNX, truncated, or its
            external data is missing or points outside its folder.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"model path is a folder, not an ONNX file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data)
    model = _parse(data, str(path))
    if load_external_data and any(True for _ in _external_tensors(model)):
        _check_external_data(model, path.parent)
        try:
            from onnx.external_data_helper import load_external_data_for_model

            _hash_external_files(digest, model, path.parent)
            load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load external data of {path}: {exc}") from None
    return ModelFile(model=model, path=path, digest=digest.hexdigest(), nbytes=len(data))


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError:
        raise ModelLoadError(f"{where} is not an ONNX model (protobuf decode failed: truncated or corrupt)") from None
    except Exception as exc:  # protobuf backends raise assorted errors on garbage
        raise ModelLoadError(f"{where} is not an ONNX model ({type(exc).__name__})") from None
    # Random bytes sometimes decode as an almost empty message: demand the fields every model has.
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(f"{where} is not an ONNX model (no ir_version, graph or opset)")
    return model


def load_model(src: str | os.PathLike | onnx.ModelProto | bytes) -> onnx.ModelProto:
    """Load a model from a path, bytes or a ModelProto (returned as is)."""
    if isinstance(src, onnx.ModelProto):
        return src
    if isinstance(src, bytes):
        return _parse(src, "<bytes>")
    return load_model_file(src).model


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_digest(model: onnx.ModelProto) -> str:
    """sha256 of the serialised model (for models under 2 GB; larger ones hash tensor by tensor)."""
    if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
        return digest_bytes(model.SerializeToString())
    h = hashlib.sha256()
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    for tensor in stripped.graph.initializer:
        h.update(tensor.raw_data)
        tensor.ClearField("raw_data")
    h.update(stripped.SerializeToString())
    return h.hexdigest()


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    protect: str | os.PathLike | None = None,
    external_data: bool | None = None,
) -> ModelFile:
    """Save atomically. Above 2 GB (or when asked) the weights go to ``<name>.data`` beside it.

    Args:
        model: the model to write.
        path: destination; its folder must exist.
        protect: a path that must not be overwritten (the input model).
        external_data: force external data on or off; ``None`` decides by size.
    """
    path = check_output_dir(path)
    if protect is not None and Path(protect).exists() and path.exists() and path.resolve() == Path(protect).resolve():
        raise ModelSaveError(f"refusing to overwrite the input model {path} (give another -o)")
    size = model.ByteSize()
    if external_data is None:
        external_data = size >= EXTERNAL_DATA_THRESHOLD
    if not external_data:
        data = model.SerializeToString()
        write_bytes_atomic(path, data)
        return ModelFile(model=model, path=path, digest=digest_bytes(data), nbytes=len(data))
    return _save_external(model, path)


def _save_external(model: onnx.ModelProto, path: Path) -> ModelFile:
    location = f"{path.name}.data"
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        onnx.save_model(copy, str(tmpdir / path.name), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=location, size_threshold=1024)
        if (tmpdir / location).exists():  # absent when every tensor is under the inline threshold
            os.replace(tmpdir / location, path.parent / location)
        os.replace(tmpdir / path.name, path)
    except OSError as exc:
        raise ModelSaveError(f"cannot write {path}: {exc}") from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    h = hashlib.sha256(path.read_bytes())
    _hash_external_files(h, onnx.load_model(str(path), load_external_data=False), path.parent)
    return ModelFile(model=model, path=path, digest=h.hexdigest(), nbytes=path.stat().st_size)


def default_output_path(input_path: str | os.PathLike, suffix: str = "surgery") -> Path:
    """``model.onnx`` → ``model.surgery.onnx`` beside it."""
    p = Path(input_path)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    return p.with_name(f"{stem}.{suffix}.onnx")


# ---------------------------------------------------------------------------
# Summary

DTYPE_NAMES = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}


def dtype_name(elem_type: int) -> str:
    return DTYPE_NAMES.get(elem_type, str(elem_type))


def value_shape(vi: onnx.ValueInfoProto) -> list[int | str] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def tensor_numel(tensor: onnx.TensorProto) -> int:
    return math.prod(tensor.dims)


@functools.cache
def _itemsize(data_type: int) -> int:
    if data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return 0
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 0


def tensor_nbytes(tensor: onnx.TensorProto) -> int:
    return tensor_numel(tensor) * _itemsize(tensor.data_type)


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """All nodes, including those in subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_nodes(g)


@dataclass
class ModelSummary:
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    opset: dict[str, int] = field(default_factory=dict)
    ir_version: int = 0
    producer: str = ""
    nodes: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)
    params: int = 0
    param_bytes: int = 0
    initializers: int = 0
    size_bytes: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(model: onnx.ModelProto, size_bytes: int | None = None) -> ModelSummary:
    """Inputs/outputs, opset, op counts, node count, parameter count and bytes."""
    g = model.graph
    init_names = {t.name for t in g.initializer}
    counts: Counter[str] = Counter()
    const_params = const_bytes = 0
    for node in iter_nodes(g):
        counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    const_params += tensor_numel(attr.t)
                    const_bytes += tensor_nbytes(attr.t)
    params = param_bytes = 0
    for t in g.initializer:
        n = math.prod(t.dims)
        params += n
        param_bytes += n * _itemsize(t.data_type)
    return ModelSummary(
        inputs=[{"name": i.name, "dtype": dtype_name(i.type.tensor_type.elem_type), "shape": value_shape(i)}
                for i in g.input if i.name not in init_names],
        outputs=[{"name": o.name, "dtype": dtype_name(o.type.tensor_type.elem_type), "shape": value_shape(o)}
                 for o in g.output],
        opset={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        ir_version=model.ir_version,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        nodes=sum(counts.values()),
        op_counts=dict(sorted(counts.items())),
        params=params + const_params,
        param_bytes=param_bytes + const_bytes,
        initializers=len(g.initializer),
        size_bytes=size_bytes if size_bytes is not None else model.ByteSize(),
    )


def opset_version(model: onnx.ModelProto, domain: str = "") -> int:
    for o in model.opset_import:
        if o.domain in (domain, "ai.onnx" if domain == "" else domain):
            return o.version
    return 0


# ---------------------------------------------------------------------------
# Index


# Ops whose attributes hold subgraphs; nodes of other domains are checked too (custom control flow).
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


class GraphIndex:
    """Producer and consumer maps of a graph's top level, built in one sweep.

    Tensors consumed inside subgraphs (implicit inputs of If/Loop bodies) count as
    consumed by the node that owns the subgraph, so dead-code elimination keeps them.
    """

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        # each node's non-empty inputs, outer-scope reads of its subgraphs included (read once: protobuf
        # field access is the slow part on large graphs)
        self.reads: list[list[str]] = []
        producer, consumers = self.producer, self.consumers
        for i, node in enumerate(self.nodes):
            for out in node.output:
                if out:
                    producer[out] = i
            names = [x for x in node.input if x]
            if (node.op_type in SUBGRAPH_OPS or node.domain not in ("", "ai.onnx")) and any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
            ):
                names.extend(subgraph_outer_inputs(node))
            self.reads.append(names)
            for name in names:
                if name in consumers:
                    consumers[name].append(i)
                else:
                    consumers[name] = [i]
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {v.name: v for v in graph.input}
        self.output_names = [o.name for o in graph.output]

    def node_inputs(self, i: int) -> list[str]:
        return self.reads[i]

    def live_nodes(self, roots: list[str]) -> list[int]:
        """Indices (in graph order) of the nodes that the tensors ``roots`` depend on."""
        seen: set[str] = set()
        keep: set[int] = set()
        stack = list(roots)
        producer, reads = self.producer, self.reads
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            i = producer.get(name)
            if i is not None and i not in keep:
                keep.add(i)
                stack.extend(reads[i])
        return sorted(keep)

    def node_by_name(self) -> dict[str, int]:
        return {n.name: i for i, n in enumerate(self.nodes) if n.name}


def subgraph_outer_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from the enclosing scope."""
    used: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            defined = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                defined.update(n.output)
            for n in iter_nodes(g):
                used.update(x for x in n.input if x)
            used -= defined
    return used
