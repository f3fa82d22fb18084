"""Graph I/O: load and save ONNX models safely, digest them, summarise them, index them.

Sizes and digests never serialise a whole model (protobuf refuses 2 GiB and more, and
upb's ``ByteSize()`` serialises to measure): they come from the tensors' shapes and the
external-data table (:mod:`surgery.tensors`); large models are saved and checked through
:mod:`surgery.external_data`, one tensor at a time.

Passes work directly on ``onnx.ModelProto`` with a :class:`GraphIndex` built in one
linear sweep. We measured an onnx-graphsurgeon import+export round trip at 20-25x the
cost of ``onnx.load`` + ``onnx.save`` on long chains (onnx-ir: 17-19x), which alone
would exceed our speed budget; editing the protobuf in place costs 2-4x.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError, EncodeError

from surgery.atomic import check_output_dir, write_bytes_atomic
from surgery.errors import ModelLoadError, ModelSaveError
from surgery.external_data import data_location, external_refs, read_external, save_external
from surgery.tensors import (
    data_nbytes,
    declared_nbytes,
    has_inline_data,
    proto_nbytes,
    skeleton,
    tensor_data_bytes,
    tensor_meta,
)

# Protobuf refuses to serialise a message of 2 GiB or more; leave headroom for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2_000_000_000


@dataclass
class ModelFile:
    """A model read from or written to disk, with its content digest.

    Attributes:
        model: the model, external data loaded into it.
        path: the ONNX file.
        digest: sha256 of the file and of every external data file it reads, in location order.
        nbytes: the ONNX file's size.
        data_files: the external data files it reads (inputs a command must never overwrite).
        data_bytes: the bytes of tensor data read from them.
    """

    model: onnx.ModelProto
    path: Path | None
    digest: str
    nbytes: int
    data_files: tuple[Path, ...] = ()
    data_bytes: int = 0


# protobuf cannot parse a message of 2 GiB or more: such a file is not a model we can read
_MAX_PROTO_FILE = 2**31 - 1


def load_model_file(path: str | os.PathLike, *, load_external_data: bool = True) -> ModelFile:
    """Read an ONNX file, with external data, and compute its digest.

    Args:
        path: the ONNX file.
        load_external_data: read the weights into the model; False checks every external
            reference and hashes the files but leaves the weights on disk (sizes, summaries).

    Raises:
        ModelLoadError: the file is missing, a folder, not ONNX, truncated, holds names that are
            not UTF-8, or its external data (anywhere in the model) is missing, does not cover
            its tensors or points outside its folder.
    """
    path = Path(path)
    if "\x00" in str(path):
        raise ModelLoadError(f"model path contains a NUL byte: {str(path)!r}")
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"model path is a folder, not an ONNX file: {path}")
    try:
        if path.stat().st_size > _MAX_PROTO_FILE:
            raise ModelLoadError(f"{path} is over 2 GiB in one file: protobuf cannot read that; save the weights "
                                 "as external data")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data)
    model = _parse(data, str(path))
    del data
    check_text(model, str(path))
    # every reference is checked even when the weights stay on disk (inspect): the digest reads the files
    refs = external_refs(model, path.parent if str(path.parent) else Path("."))
    read_external(digest, refs, load=load_external_data)
    return ModelFile(model=model, path=path, digest=digest.hexdigest(), nbytes=path.stat().st_size,
                     data_files=tuple(sorted({r.path for r in refs}, key=str)),
                     data_bytes=sum(r.length for r in refs) if load_external_data else 0)


def external_data_files(path: str | os.PathLike) -> tuple[Path, ...]:
    """The external data files an ONNX file reads, checked but not read (for planning a command's outputs).

    Raises:
        ModelLoadError: as :func:`load_model_file`.
    """
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_PROTO_FILE:
            raise ModelLoadError(f"{path} is over 2 GiB in one file: protobuf cannot read that")
        model = _parse(path.read_bytes(), str(path))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    check_text(model, str(path))
    refs = external_refs(model, path.parent if str(path.parent) else Path("."))
    return tuple(sorted({r.path for r in refs}, key=str))


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


def check_text(model: onnx.ModelProto, where: str = "the model") -> None:
    """Refuse names that are not UTF-8: protobuf hands them over as ``bytes``, which no code expects.

    Checks every name the tools read: opsets, metadata, graph, node, value and tensor names,
    dims' symbols, at every graph level and in functions.

    Raises:
        ModelLoadError: naming the field and the bad value.
    """
    def bad(what: str, value: object) -> ModelLoadError:
        return ModelLoadError(f"{where}: {what} is not valid UTF-8 text ({bytes(value)[:40]!r})")

    for field_name in ("producer_name", "producer_version", "domain"):
        if not isinstance(getattr(model, field_name), str):
            raise bad(field_name, getattr(model, field_name))
    for o in model.opset_import:
        if not isinstance(o.domain, str):
            raise bad("an opset domain", o.domain)
    for p in model.metadata_props:
        if not isinstance(p.key, str) or not isinstance(p.value, str):
            raise bad("a metadata entry", p.key if not isinstance(p.key, str) else p.value)
    _check_graph_text(model.graph, bad)
    for f in model.functions:
        for value in (f.name, f.domain, *f.input, *f.output, *f.attribute):
            if not isinstance(value, str):
                raise bad(f"a name in function {f.name!r}", value)
        _check_nodes_text(f.node, bad)
    for info in model.training_info:
        _check_graph_text(info.initialization, bad)
        _check_graph_text(info.algorithm, bad)


def _check_graph_text(graph: onnx.GraphProto, bad) -> None:
    if not isinstance(graph.name, str):
        raise bad("a graph name", graph.name)
    for values in (graph.input, graph.output, graph.value_info):
        for vi in values:
            if not isinstance(vi.name, str):
                raise bad("a value name", vi.name)
            if vi.type.HasField("tensor_type"):
                for d in vi.type.tensor_type.shape.dim:
                    if not isinstance(d.dim_param, str) or not isinstance(d.denotation, str):
                        raise bad(f"a dimension of {vi.name!r}", d.dim_param)
    for t in graph.initializer:
        if not isinstance(t.name, str):
            raise bad("an initializer name", t.name)
    for sp in graph.sparse_initializer:
        if not isinstance(sp.values.name, str) or not isinstance(sp.indices.name, str):
            raise bad("a sparse initializer name", sp.values.name)
    _check_nodes_text(graph.node, bad)


def _check_nodes_text(nodes, bad) -> None:
    for node in nodes:
        if not node.attribute:
            # Without attributes a node's bytes are its strings between ASCII tags: if they decode as
            # UTF-8, every string does (a bad sequence stays bad next to a tag byte), checked in C
            try:
                node.SerializeToString().decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass  # a bad string, or a length byte over 127 next to one: find out field by field
        for value in (node.name, node.op_type, node.domain):
            if not isinstance(value, str):
                raise bad("a node name, op type or domain", value)
        for value in (*node.input, *node.output):
            if not isinstance(value, str):
                raise bad(f"a tensor name of node {node.name!r}", value)
        for attr in node.attribute:
            if not isinstance(attr.name, str) or not isinstance(attr.ref_attr_name, str):
                raise bad(f"an attribute name of node {node.name!r}", attr.name)
            if attr.HasField("t") and not isinstance(attr.t.name, str):
                raise bad(f"a tensor name in node {node.name!r}", attr.t.name)
            if attr.HasField("g"):
                _check_graph_text(attr.g, bad)
            for g in attr.graphs:
                _check_graph_text(g, bad)


def load_model(src: str | os.PathLike | onnx.ModelProto | bytes) -> onnx.ModelProto:
    """Load a model from a path, bytes or a ModelProto (returned as is)."""
    if isinstance(src, onnx.ModelProto):
        return src
    if isinstance(src, bytes):
        model = _parse(src, "<bytes>")
        check_text(model, "<bytes>")
        return model
    return load_model_file(src).model


def digest_bytes(data: bytes) -> str:
    """sha256 of some bytes, as hex."""
    return hashlib.sha256(data).hexdigest()


def model_nbytes(model: onnx.ModelProto) -> int:
    """The model's size as one protobuf message, computed from its tensors and external-data table.

    Never serialises a model that may be near protobuf's 2 GB limit (``ByteSize()`` serialises
    internally and fails there).
    """
    return proto_nbytes(model, EXTERNAL_DATA_THRESHOLD)


def is_large(model: onnx.ModelProto) -> bool:
    """Whether the model is too big to serialise as one message (it must go through external data)."""
    return model_nbytes(model) >= EXTERNAL_DATA_THRESHOLD


def model_digest(model: onnx.ModelProto) -> str:
    """A content digest of an in-memory model (sha256).

    Below 2 GB: the sha256 of its serialisation. Above: the sha256 of its skeleton, in which
    each tensor's values are replaced by their own sha256, hashed one tensor at a time (the
    model is never serialised whole, nor copied).
    """
    if not is_large(model):
        return digest_bytes(model.SerializeToString())

    def by_digest(t: onnx.TensorProto) -> onnx.TensorProto | None:
        if not has_inline_data(t):
            return None
        out = tensor_meta(t)
        out.data_location = onnx.TensorProto.EXTERNAL
        entry = out.external_data.add()
        entry.key, entry.value = "sha256", hashlib.sha256(tensor_data_bytes(t)).hexdigest()
        return out

    return "large:" + digest_bytes(skeleton(model, by_digest).SerializeToString())


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    protect: str | os.PathLike | None = None,
    external_data: bool | None = None,
) -> ModelFile:
    """Save atomically. Above 2 GB (or when asked) the weights go to ``<name>.data`` beside it.

    The model itself is left as it was (external data is written from a skeleton, one tensor
    at a time), and the data file is replaced, never appended to.

    Args:
        model: the model to write.
        path: destination; its folder must exist.
        protect: a path that must not be overwritten (the input model).
        external_data: force external data on or off; ``None`` decides by size.

    Raises:
        ModelSaveError: the folder is missing or not writable, the disk is full, ``path`` is a
            folder or the protected input, or the model is too large for one file.
    """
    path = check_output_dir(path)
    if protect is not None and Path(protect).exists() and path.exists() and path.resolve() == Path(protect).resolve():
        raise ModelSaveError(f"refusing to overwrite the input model {path} (give another -o)")
    if external_data is None:
        external_data = is_large(model)
    if not external_data:
        try:
            data = model.SerializeToString()
        except (EncodeError, ValueError):
            raise ModelSaveError(f"cannot write {path}: the model is over 2 GB as one file; save it with "
                                 "external data") from None
        write_bytes_atomic(path, data)
        return ModelFile(model=model, path=path, digest=digest_bytes(data), nbytes=len(data))
    body, data_size = save_external(model, path)
    h = hashlib.sha256(body)
    files: tuple[Path, ...] = ()
    if data_size:
        data_path = path.parent / data_location(path)
        with open(data_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)
        files = (data_path,)
    return ModelFile(model=model, path=path, digest=h.hexdigest(), nbytes=len(body), data_files=files,
                     data_bytes=data_size)


def runtime_source(model: onnx.ModelProto, folder: str | os.PathLike) -> bytes | str:
    """What a runtime session loads: the serialised model, or a file in ``folder`` above 2 GB.

    Above 2 GB the model is saved (with external data, the model untouched) as a fresh file
    in ``folder``; the caller owns the folder and removes it.
    """
    if not is_large(model):
        return model.SerializeToString()
    fd, name = tempfile.mkstemp(prefix="model-", suffix=".onnx", dir=folder)
    os.close(fd)
    save_model(model, name, external_data=True)
    return name


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
    """Inputs/outputs, opset, op counts, node count, parameter count and bytes.

    Parameters are every tensor the model holds (initializers and Constant or other tensor
    attributes at every graph level, sparse tensors by their stored values), by declared
    shape: nothing is serialised, so this works on a model of any size. One walk over the
    graphs gives the op counts and the tensors.
    """
    g = model.graph
    init_names = {t.name for t in g.initializer}
    counts: Counter[str] = Counter()
    totals = [0, 0, 0]  # params, param bytes, bytes of tensor data
    _summary_walk(g, counts, totals)
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
        params=totals[0],
        param_bytes=totals[1],
        initializers=len(g.initializer) + len(g.sparse_initializer),
        size_bytes=size_bytes if size_bytes is not None else proto_nbytes(model, EXTERNAL_DATA_THRESHOLD,
                                                                          data=totals[2]),
    )


def _summary_walk(graph: onnx.GraphProto, counts: Counter[str], totals: list[int]) -> None:
    """Op counts and tensor totals of a graph and its subgraphs, in one pass."""
    def tensor(t: onnx.TensorProto, is_param: bool = True) -> None:
        if is_param:
            totals[0] += max(0, math.prod(t.dims))
            totals[1] += declared_nbytes(t)
        totals[2] += data_nbytes(t)

    for t in graph.initializer:
        tensor(t)
    for sp in graph.sparse_initializer:
        tensor(sp.values)
        tensor(sp.indices, is_param=False)  # positions, not parameters
    for node in graph.node:
        counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
        if not node.attribute:
            continue
        for attr in node.attribute:
            if attr.HasField("t"):
                tensor(attr.t)
            for t in attr.tensors:
                tensor(t)
            for sp in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                tensor(sp.values)
                tensor(sp.indices, is_param=False)
            if attr.HasField("g"):
                _summary_walk(attr.g, counts, totals)
            for sub in attr.graphs:
                _summary_walk(sub, counts, totals)


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
