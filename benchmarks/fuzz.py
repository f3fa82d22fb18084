"""Fuzz ``surgery inspect`` and ``surgery apply`` with mutated models; report the outcome classes.

    python benchmarks/fuzz.py --mutants 10000 --seed 0 [--jobs 2] [--keep DIR]

Seeded, so a run is reproducible and every finding has a seed. Each mutant is one of several
base models (a Conv/Resize graph, If branches with their own initializers and Constants, a
model with external data, sparse tensors, a Loop body) changed by 1-3 structured protobuf
mutations (dims, dtypes, tensor data, external-data tables pointing anywhere, nodes,
attributes, subgraphs, opsets, names) or byte-level ones (bit flips, truncation,
insertions, invalid UTF-8 in names). Each mutant goes through ``inspect`` and through
``apply`` (a random pass; with verification or ``--no-verify`` in turn), each run in a
forked child that calls ``surgery.cli.main.main`` in-process, under a timeout.

Outcome classes: ``ok`` (exit 0), ``usage error`` (exit 2), ``verification failure``
(exit 1, a FAILED line), ``internal error`` (exit 1 "internal error", an exception out of
``main``, or a crash), ``hang`` (killed at the timeout). Besides the class, each run is
checked for what must never happen: the input model changed, an output written by a run
that failed, or more than one line on stderr for a run that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OK, USAGE, VERIFY, INTERNAL, HANG = "ok", "usage error", "verification failure", "internal error", "hang"
CLASSES = (OK, USAGE, VERIFY, INTERNAL, HANG)
MAX_INPUT_BYTES = 256 * 2**20  # generated samples a child may allocate (SURGERY_MAX_INPUT_BYTES)
CHILD_MEMORY = 6 * 2**30  # address-space limit of a child: a runaway allocation fails there, not on the host
RUN_SECONDS = 10  # SURGERY_VERIFY_TIMEOUT of a child: a runaway Loop is a verification failure, not a hang

# ---------------------------------------------------------------------------
# base models: (name, model, extra files written beside it)

Base = tuple[str, onnx.ModelProto, dict[str, bytes]]


def _model(nodes, inputs, outputs, inits=(), opset=13, sparse=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _f(shape: Sequence[int | str], name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def base_conv(rng: np.random.Generator) -> Base:
    """Conv → Relu → {bilinear Resize, Sigmoid}; a dead Neg; an unused initializer."""
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.ones(3, np.float32), "unused")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Resize", ["r", "roi", "scales"], ["up"], name="Resize_317", mode="linear",
                              coordinate_transformation_mode="align_corners"),
             helper.make_node("Sigmoid", ["r"], ["aux"], name="aux_sigmoid"),
             helper.make_node("Neg", ["c"], ["dead"], name="dead_neg")]
    model = _model(nodes, [_f(["N", 3, 8, 8], "x")], [_f(["N", 4, 16, 16], "up"), _f(["N", 4, 8, 8], "aux")],
                   inits, opset=11)
    return "conv", model, {}


def base_branches(rng: np.random.Generator) -> Base:
    """If (cond from the data) with branches that own initializers and Constant nodes."""
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
            rng.standard_normal(64).astype(np.float32), "k_value")),
         helper.make_node("Add", ["x", "k"], ["t1"]), helper.make_node("Mul", ["t1", "tw"], ["t_out"])],
        "then", [], [_f([64], "t_out")], [numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "tw")])
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["e"], value_floats=[0.5] * 64),
         helper.make_node("Sub", ["x", "e"], ["e_out"])], "else", [], [_f([64], "e_out")])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)]
    model = _model(nodes, [_f([64], "x")], [_f([64], "y")], [numpy_helper.from_array(np.zeros((), np.float32),
                                                                                       "zero")], opset=13)
    return "branches", model, {}


def base_external(rng: np.random.Generator) -> Base:
    """MatMul + Add with weights and a Constant in an external data file."""
    w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
        rng.standard_normal(16).astype(np.float32), "k_value")),
             helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Mul", ["a", "k"], ["y"])]
    model = _model(nodes, [_f(["N", 16], "x")], [_f(["N", 16], "y")], [w, b])
    blob = bytearray()
    tensors = [w, b, nodes[0].attribute[0].t]
    for t in tensors:
        data = t.raw_data
        offset = len(blob)
        blob += data
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(len(data)))):
            e = t.external_data.add()
            e.key, e.value = key, value
    return "external", model, {"weights.bin": bytes(blob)}


def base_sparse(rng: np.random.Generator) -> Base:
    """A sparse initializer and a Constant with a sparse value."""
    def sparse(name: str, n: int, k: int) -> onnx.SparseTensorProto:
        idx = np.sort(rng.choice(n, k, replace=False)).astype(np.int64)
        values = numpy_helper.from_array(rng.standard_normal(k).astype(np.float32), name)
        return helper.make_sparse_tensor(values, numpy_helper.from_array(idx, name + "_idx"), [n])

    nodes = [helper.make_node("Constant", [], ["k"], sparse_value=sparse("k_sparse", 32, 5)),
             helper.make_node("Add", ["x", "w"], ["a"]), helper.make_node("Mul", ["a", "k"], ["y"])]
    model = _model(nodes, [_f([32], "x")], [_f([32], "y")], sparse=[sparse("w", 32, 7)])
    return "sparse", model, {}


def base_loop(rng: np.random.Generator) -> Base:
    """A Loop whose body reads an outer tensor and holds its own initializer."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "step"], ["a1"]), helper.make_node("Mul", ["a1", "outer"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), _f([8], "acc_in")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _f([8], "acc_out")],
        [numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "step")])
    inits = [numpy_helper.from_array(np.array(3, np.int64), "trips"), numpy_helper.from_array(np.array(True), "go"),
             numpy_helper.from_array(np.full(8, 0.5, np.float32), "outer")]
    nodes = [helper.make_node("Loop", ["trips", "go", "x"], ["y"], name="loop", body=body)]
    model = _model(nodes, [_f([8], "x")], [_f([8], "y")], inits)
    return "loop", model, {}


BASES: tuple[Callable[[np.random.Generator], Base], ...] = (base_conv, base_branches, base_external, base_sparse,
                                                            base_loop)

# ---------------------------------------------------------------------------
# structured mutations: each edits the model (and maybe the files) in place and says what it did

Files = dict[str, bytes]
WEIRD_INTS = (0, -1, -7, 1, 2, 3, 255, 2**31, 2**40, 10**15, 2**62, -(2**62))
WEIRD_TEXT = ("", " ", "N", "x y", "é", "名", "a\x00b", "../x", "%s%n", "a" * 300)
LOCATIONS = ("weights.bin", "./weights.bin", "../weights.bin", "../../../../etc/passwd", "/etc/passwd", "a\x00b",
             "missing.bin", "", ".", "sub", "weights.bin/../weights.bin", "~/x", "\u202ereversed", "model.onnx",
             "/dev/zero", "../" * 30 + "etc/hostname")
NUMBERS = (None, "0", "4", "64", "-1", "abc", "1e3", " 8", "99999999999", "18446744073709551616", "", "0x10")
OPS = ("Relu", "Add", "Conv", "Resize", "Bogus", "If", "Loop", "Constant", "Reshape", "Gather", "MatMul", "Identity",
       "Cast", "Concat", "Split", "")


def _graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    out = [model.graph]
    k = 0
    while k < len(out):
        for node in out[k].node:
            for a in node.attribute:
                if a.HasField("g"):
                    out.append(a.g)
                out.extend(a.graphs)
        k += 1
    return out


def _tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    out: list[onnx.TensorProto] = []
    for g in _graphs(model):
        out.extend(g.initializer)
        for s in g.sparse_initializer:
            out += [s.values, s.indices]
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    out.append(a.t)
                out.extend(a.tensors)
                if a.HasField("sparse_tensor"):
                    out += [a.sparse_tensor.values, a.sparse_tensor.indices]
    return out


def _values(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [v for g in _graphs(model) for v in (*g.input, *g.output, *g.value_info)]


def _nodes(model: onnx.ModelProto) -> list[tuple[onnx.GraphProto, int]]:
    return [(g, i) for g in _graphs(model) for i in range(len(g.node))]


def m_dim(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    vis = [v for v in _values(m) if v.type.HasField("tensor_type")]
    if not vis:
        return "no value to change"
    vi = r.choice(vis)
    dims = vi.type.tensor_type.shape.dim
    d = dims.add() if not len(dims) or r.random() < 0.2 else dims[r.randrange(len(dims))]
    if r.random() < 0.7:
        d.dim_value = r.choice(WEIRD_INTS)
        return f"dim of {vi.name!r} = {d.dim_value}"
    d.dim_param = r.choice(WEIRD_TEXT)
    return f"dim of {vi.name!r} = {d.dim_param!r}"


def m_rank(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    vi = r.choice(_values(m))
    t = vi.type.tensor_type
    if r.random() < 0.5:
        t.ClearField("shape")
        return f"shape of {vi.name!r} removed"
    del t.shape.dim[:]
    for _ in range(r.randrange(0, 9)):
        t.shape.dim.add().dim_value = r.choice((1, 2, 3, 8))
    return f"rank of {vi.name!r} = {len(t.shape.dim)}"


def m_elem_type(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    vi = r.choice(_values(m))
    vi.type.tensor_type.elem_type = r.choice((-1, 0, 1, 2, 6, 7, 8, 9, 10, 11, 16, 17, 23, 24, 30, 99, 2**20))
    return f"elem_type of {vi.name!r} = {vi.type.tensor_type.elem_type}"


def m_value_type(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    vi = r.choice(_values(m))
    kind = r.choice(("sequence", "map", "optional", "none"))
    if kind == "sequence":
        vi.type.sequence_type.elem_type.tensor_type.elem_type = 1
    elif kind == "map":
        vi.type.map_type.key_type = 7
        vi.type.map_type.value_type.tensor_type.elem_type = 1
    elif kind == "optional":
        vi.type.optional_type.elem_type.tensor_type.elem_type = 1
    else:
        vi.ClearField("type")
    return f"type of {vi.name!r} -> {kind}"


def m_tensor(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    ts = _tensors(m)
    if not ts:
        return "no tensor"
    t = r.choice(ts)
    what = r.choice(("dtype", "dims", "raw", "typed", "name", "segment"))
    if what == "dtype":
        t.data_type = r.choice((-3, 0, 2, 3, 8, 9, 12, 13, 16, 17, 21, 22, 30, 77, 2**20))
    elif what == "dims":
        dims = list(t.dims)
        choice = r.random()
        if choice < 0.3:
            dims.append(r.choice(WEIRD_INTS))
        elif choice < 0.6 and dims:
            dims[r.randrange(len(dims))] = r.choice(WEIRD_INTS)
        else:
            dims = dims[:-1]
        del t.dims[:]
        t.dims.extend(dims)
    elif what == "raw":
        raw = t.raw_data if t.HasField("raw_data") else b""
        choice = r.random()
        t.raw_data = raw[: r.randrange(len(raw) + 1)] if choice < 0.5 else raw + bytes(r.randrange(1, 64))
    elif what == "typed":
        t.ClearField("raw_data")
        t.float_data.extend([float("nan"), 1.0, float("inf")][: r.randrange(1, 4)])
        t.int64_data.extend([r.choice(WEIRD_INTS)])
    elif what == "name":
        t.name = r.choice(WEIRD_TEXT)
    else:
        t.segment.begin, t.segment.end = r.choice(WEIRD_INTS), r.choice(WEIRD_INTS)
    return f"tensor {t.name!r}: {what}"


def m_external(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    """Point a random tensor (anywhere: initializer, subgraph, Constant, sparse) at external data."""
    ts = _tensors(m)
    if not ts:
        return "no tensor"
    t = r.choice(ts)
    t.data_location = TensorProto.EXTERNAL
    if r.random() < 0.7:
        t.ClearField("raw_data")
    del t.external_data[:]
    entries = {"location": r.choice(LOCATIONS), "offset": r.choice(NUMBERS), "length": r.choice(NUMBERS)}
    if r.random() < 0.1:
        entries.pop("location")
    if r.random() < 0.1:
        entries["checksum"] = "zz"
    for key, value in entries.items():
        if value is not None:
            e = t.external_data.add()
            e.key, e.value = key, value
    if "weights.bin" not in f and r.random() < 0.5:
        f["weights.bin"] = bytes(range(256)) * 4
    if r.random() < 0.2:
        f["sub/inner.bin"] = b"\0" * 64
    return f"tensor {t.name!r} external: {entries}"


def m_external_files(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    if not f:
        return "no files"
    name = r.choice(sorted(f))
    choice = r.random()
    if choice < 0.4:
        f[name] = f[name][: r.randrange(len(f[name]) + 1)]
        return f"{name} truncated"
    if choice < 0.6:
        del f[name]
        return f"{name} removed"
    f[name] = f[name] + bytes(r.randrange(1, 100))
    return f"{name} extended"


def m_node(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    sites = _nodes(m)
    if not sites:
        return "no node"
    g, i = r.choice(sites)
    node = g.node[i]
    what = r.choice(("delete", "dup", "op", "domain", "input", "output", "name", "swap"))
    if what == "delete":
        del g.node[i]
    elif what == "dup":
        g.node.add().CopyFrom(node)
    elif what == "op":
        node.op_type = r.choice(OPS)
    elif what == "domain":
        node.domain = r.choice(("com.microsoft", "ai.onnx.ml", "bogus", "ai.onnx", ""))
    elif what == "input":
        if node.input and r.random() < 0.6:
            node.input[r.randrange(len(node.input))] = r.choice(("missing", "", "x", "w", node.output[0] if
                                                                 node.output else "y"))
        else:
            node.input.append(r.choice(("x", "missing", "")))
    elif what == "output":
        if node.output:
            node.output[r.randrange(len(node.output))] = r.choice(("x", "", "y", "up", "dup"))
        else:
            node.output.append("extra")
    elif what == "name":
        node.name = r.choice(WEIRD_TEXT)
    elif len(g.node) > 1:
        j = r.randrange(len(g.node))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    return f"node {node.name or i}: {what}"


def m_attribute(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    sites = [(g, i) for g, i in _nodes(m)]
    if not sites:
        return "no node"
    g, i = r.choice(sites)
    node = g.node[i]
    if node.attribute and r.random() < 0.6:
        a = node.attribute[r.randrange(len(node.attribute))]
        what = r.choice(("remove", "type", "ints", "strings", "float", "graph"))
        if what == "remove":
            node.attribute.remove(a)
        elif what == "type":
            a.type = r.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99))
        elif what == "ints":
            del a.ints[:]
            a.ints.extend(r.choice(WEIRD_INTS) for _ in range(r.randrange(5)))
            a.type = onnx.AttributeProto.INTS
        elif what == "strings":
            a.s = r.choice((b"", b"\xff\xfe", b"nearest", b"bogus"))
            a.type = onnx.AttributeProto.STRING
        elif what == "float":
            a.f = r.choice((float("nan"), float("inf"), -1.0, 1e30))
            a.type = onnx.AttributeProto.FLOAT
        else:
            a.g.CopyFrom(helper.make_graph([], "empty", [], []))
            a.type = onnx.AttributeProto.GRAPH
        return f"attribute {a.name!r} of {node.op_type}: {what}"
    name = r.choice(("mode", "axis", "pads", "value", "then_branch", "body", "to", "perm", "bogus"))
    value = r.choice((1, -5, 2**40, 1.5, "nearest", [1, 2, 3], [0.5], b"\xff"))
    node.attribute.append(helper.make_attribute(name, value))
    return f"attribute {name}={value!r} added to {node.op_type}"


def m_graph_io(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    g = r.choice(_graphs(m))
    what = r.choice(("clear outputs", "dup output", "rename output", "drop input", "dup input", "input is init",
                     "add value_info"))
    if what == "clear outputs":
        del g.output[:]
    elif what == "dup output" and g.output:
        g.output.add().CopyFrom(g.output[0])
    elif what == "rename output" and g.output:
        g.output[0].name = r.choice(("missing", "x", "", "w"))
    elif what == "drop input" and g.input:
        del g.input[0]
    elif what == "dup input" and g.input:
        g.input.add().CopyFrom(g.input[0])
    elif what == "input is init" and g.initializer:
        g.input.append(_f([1], g.initializer[0].name))
    else:
        g.value_info.append(helper.make_tensor_value_info(r.choice(("c", "r", "x", "m")), r.choice((1, 7, 9)),
                                                          [r.choice((1, 2, 99))]))
    return f"graph {g.name!r}: {what}"


def m_model(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    what = r.choice(("opset", "ir", "no opset", "domain opset", "metadata", "function", "training"))
    if what == "opset":
        m.opset_import[0].version = r.choice((-1, 0, 1, 6, 7, 10, 11, 13, 17, 21, 23, 99, 2**40))
    elif what == "ir":
        m.ir_version = r.choice((-1, 1, 2, 3, 4, 7, 8, 10, 11, 99, 2**40))
    elif what == "no opset":
        del m.opset_import[:]
    elif what == "domain opset":
        m.opset_import.append(helper.make_opsetid(r.choice(("com.microsoft", "bogus", "")), r.choice((1, 2**33))))
    elif what == "metadata":
        m.metadata_props.append(onnx.StringStringEntryProto(key=r.choice(WEIRD_TEXT), value=r.choice(WEIRD_TEXT)))
    elif what == "function":
        m.functions.append(helper.make_function("local", "F", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                                [helper.make_opsetid("", 13)]))
        if r.random() < 0.5:
            g = m.graph
            g.node.append(helper.make_node("F", [g.input[0].name if g.input else "x"], ["fo"], domain="local"))
    else:
        m.training_info.add().initialization.CopyFrom(helper.make_graph([], "init", [], []))
    return f"model: {what}"


def m_subgraph(m: onnx.ModelProto, f: Files, r: random.Random) -> str:
    holders = [(g, n) for g in _graphs(m) for n in g.node if any(a.HasField("g") for a in n.attribute)]
    if not holders:
        return m_node(m, f, r)
    g, node = r.choice(holders)
    a = r.choice([a for a in node.attribute if a.HasField("g")])
    what = r.choice(("clear outputs", "drop nodes", "nest", "swap", "outer read"))
    if what == "clear outputs":
        del a.g.output[:]
    elif what == "drop nodes":
        del a.g.node[:]
    elif what == "nest":
        inner = onnx.GraphProto()
        inner.CopyFrom(a.g)
        wrapper = helper.make_node("If", ["cond"] if "cond" in {o for n in g.node for o in n.output} else ["x"],
                                   [o.name for o in inner.output], then_branch=inner, else_branch=inner)
        a.g.node.append(wrapper)
    elif what == "swap" and len(node.attribute) > 1:
        node.attribute[0].name, node.attribute[1].name = node.attribute[1].name, node.attribute[0].name
    else:
        if a.g.node:
            a.g.node[0].input.append(r.choice(("x", "missing", "w", "zero")))
    return f"subgraph {a.name!r} of {node.op_type}: {what}"


STRUCTURED: tuple[Callable[[onnx.ModelProto, Files, random.Random], str], ...] = (
    m_dim, m_dim, m_rank, m_elem_type, m_value_type, m_tensor, m_tensor, m_external, m_external, m_external_files,
    m_node, m_node, m_attribute, m_graph_io, m_model, m_subgraph)

# ---------------------------------------------------------------------------
# byte-level mutations of the serialised model


def b_mutate(data: bytes, model: onnx.ModelProto, r: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data) or bytearray(b"\x08")  # an earlier truncation may have left nothing
    what = r.choice(("flip", "truncate", "insert", "chunk", "zero", "utf8"))
    if what == "flip":
        for _ in range(r.randrange(1, 8)):
            k = r.randrange(len(buf))
            buf[k] ^= 1 << r.randrange(8)
    elif what == "truncate":
        buf = buf[: r.randrange(len(buf))]
    elif what == "insert":
        k = r.randrange(len(buf) + 1)
        buf[k:k] = bytes(r.randrange(256) for _ in range(r.randrange(1, 16)))
    elif what == "chunk":
        a = r.randrange(len(buf))
        b = min(len(buf), a + r.randrange(1, 64))
        k = r.randrange(len(buf) + 1)
        buf[k:k] = buf[a:b]
    elif what == "zero":
        a = r.randrange(len(buf))
        buf[a: a + r.randrange(1, 32)] = bytes(min(len(buf) - a, 32))[: r.randrange(1, 32)]
    else:  # a name's first byte becomes an invalid UTF-8 lead byte: protobuf hands it back as bytes
        names = sorted({n.encode() for n in _names(model) if len(n) >= 1})
        if names:
            name = r.choice(names)
            k = buf.find(name)
            if k >= 0:
                buf[k] = r.choice((0xFF, 0xC0, 0x80, 0xFE))
    return bytes(buf), f"bytes: {what}"


def _names(model: onnx.ModelProto) -> list[str]:
    out = []
    for g in _graphs(model):
        out += [v.name for v in (*g.input, *g.output)]
        out += [n.name for n in g.node] + [n.op_type for n in g.node]
        out += [t.name for t in g.initializer]
    out += [e.value for t in _tensors(model) for e in t.external_data]
    return [n for n in out if isinstance(n, str) and n]


# ---------------------------------------------------------------------------
# mutants and runs


@dataclass
class Mutant:
    """A mutated model written to its own folder."""

    index: int
    base: str
    mutations: list[str]
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / "model.onnx"


def make_mutant(index: int, seed: int, root: Path) -> Mutant:
    """Mutant ``index`` of the run seeded ``seed``: the same on every machine."""
    r = random.Random(seed * 1_000_003 + index)
    np_rng = np.random.default_rng(r.randrange(2**32))
    name, model, files = BASES[r.randrange(len(BASES))](np_rng)
    files = dict(files)
    mutations: list[str] = []
    if r.random() < 0.72:
        for _ in range(r.randint(1, 3)):
            try:
                mutations.append(r.choice(STRUCTURED)(model, files, r))
            except (IndexError, ValueError, TypeError, AttributeError) as exc:  # a mutation that did not apply
                mutations.append(f"(skipped: {type(exc).__name__})")
        try:
            data = model.SerializeToString()
        except Exception as exc:
            mutations.append(f"(unserialisable: {type(exc).__name__})")
            name, model, files = BASES[0](np_rng)
            data = model.SerializeToString()
    else:
        data = model.SerializeToString()
        for _ in range(r.randint(1, 3)):
            data, what = b_mutate(data, model, r)
            mutations.append(what)
    folder = root / f"m{index:05d}"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(data)
    for rel, content in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    return Mutant(index, name, mutations, folder)


PASS_CHOICES: tuple[tuple[str, ...], ...] = (
    ("eliminate_dead_code",), ("resize_nearest",), ("prune_outputs", "outputs=0"), ("fix_shapes", "batch=2"),
    ("truncate", "tensors=r"), ("simplify",), ("eliminate_dead_code",))


def commands_for(mutant: Mutant, r: random.Random, *, verify_every: int = 2) -> list[tuple[str, list[str]]]:
    """``inspect`` and one ``apply`` (a random pass; verified every ``verify_every``-th mutant)."""
    passes = list(r.choice(PASS_CHOICES))
    apply = ["apply", "model.onnx", "--pass", *passes, "-o", "out.onnx", "--record", "out.json"]
    if mutant.index % verify_every:
        apply.append("--no-verify")
    return [("inspect", ["inspect", "model.onnx"]), ("apply", apply)]


@dataclass
class Run:
    """One command on one mutant, and how it ended."""

    mutant: int
    base: str
    mutations: list[str]
    command: list[str]
    outcome: str
    returncode: int | None
    seconds: float
    stderr: str
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        err = self.stderr.strip().splitlines()
        return (f"mutant {self.mutant} ({self.base}: {'; '.join(self.mutations)}) `surgery {' '.join(self.command)}`"
                f" -> {self.outcome} rc={self.returncode}: {err[-1][:200] if err else ''}")


def _child(argv: list[str], folder: Path) -> None:
    """In the forked child: run the CLI in-process with its output in files, exit with its code."""
    os.setsid()
    os.chdir(folder)
    os.environ["SURGERY_MAX_INPUT_BYTES"] = str(MAX_INPUT_BYTES)
    os.environ["SURGERY_VERIFY_TIMEOUT"] = str(RUN_SECONDS)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    out = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open("stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115 - the process ends below
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    code = 99
    try:
        from surgery.cli.main import main

        code = int(main(argv))
    except SystemExit as exc:  # argparse's own exit
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:
        sys.stderr.write("escaped main: " + traceback.format_exc().replace("\n", " | ") + "\n")
        code = 98
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def classify(rc: int | None, stderr: str, stdout: str) -> str:
    """The outcome class of one finished run."""
    if rc is None:
        return HANG
    if rc == 0:
        return OK
    if rc == 2:
        return USAGE
    if rc == 1 and "internal error" not in stderr and "FAILED" in stdout + stderr:
        return VERIFY
    return INTERNAL


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in ("stdout.txt", "stderr.txt", "out.onnx", "out.onnx.data", "out.json"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _finish(mutant: Mutant, argv: list[str], rc: int | None, started: float, before: str) -> Run:
    folder = mutant.folder
    read = lambda name: (folder / name).read_text(errors="replace") if (folder / name).exists() else ""  # noqa: E731
    stderr, stdout = read("stderr.txt"), read("stdout.txt")
    outcome = classify(rc, stderr, stdout)
    run = Run(mutant.index, mutant.base, mutant.mutations, argv, outcome, rc, time.perf_counter() - started, stderr)
    if _digest(folder) != before:
        run.problems.append("the input model or its data changed")
    if argv[0] == "apply" and rc not in (0, None) and (folder / "out.onnx").exists():
        run.problems.append("a failed apply wrote its output")
    if outcome in (USAGE, VERIFY) and len([s for s in stderr.splitlines() if s.strip()]) > 1:
        run.problems.append("more than one line on stderr")
    for name in ("out.onnx", "out.onnx.data", "out.json", "stdout.txt", "stderr.txt"):
        if (folder / name).exists():
            (folder / name).unlink()
    return run


def run_all(jobs: list[tuple[Mutant, list[str]]], *, timeout: float, parallel: int = 1,
            on_run: Callable[[Run], None] | None = None) -> list[Run]:
    """Run each (mutant, argv) in a forked child, ``parallel`` at a time; a child past ``timeout`` is a hang."""
    results: list[Run] = []
    pending = list(jobs)
    live: dict[int, tuple[Mutant, list[str], float, str]] = {}
    busy: set[int] = set()  # mutants with a run in flight (their folder is in use)
    while pending or live:
        k = 0
        while len(live) < parallel and k < len(pending):
            mutant, argv = pending[k]
            if mutant.index in busy:
                k += 1
                continue
            pending.pop(k)
            before = _digest(mutant.folder)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(argv, mutant.folder)
            live[pid] = (mutant, argv, time.perf_counter(), before)
            busy.add(mutant.index)
        time.sleep(0.002)
        for pid, (mutant, argv, started, before) in list(live.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            rc: int | None
            if done == 0:
                if time.perf_counter() - started < timeout:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                rc = None
            else:
                rc = os.waitstatus_to_exitcode(status)
                if rc < 0:  # killed by a signal: a crash (segfault, abort)
                    rc = 128 - rc
            del live[pid]
            busy.discard(mutant.index)
            run = _finish(mutant, argv, rc, started, before)
            results.append(run)
            if on_run is not None:
                on_run(run)
    return results


@dataclass
class Report:
    """Outcome counts and the runs worth a look."""

    mutants: int
    runs: list[Run]
    seconds: float

    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.runs)

    def by_command(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for r in self.runs:
            key = r.command[0] + (" --no-verify" if "--no-verify" in r.command else "")
            out.setdefault(key, Counter())[r.outcome] += 1
        return out

    def findings(self) -> list[Run]:
        return [r for r in self.runs if r.outcome in (INTERNAL, HANG) or r.problems]

    def text(self) -> str:
        lines = [f"{self.mutants} mutants, {len(self.runs)} runs in {self.seconds:.1f} s"]
        counts = self.counts()
        lines.append("outcome classes: " + ", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES))
        for command, c in sorted(self.by_command().items()):
            lines.append(f"  {command:<20} " + ", ".join(f"{k} {c.get(k, 0)}" for k in CLASSES))
        problems = Counter(p for r in self.runs for p in r.problems)
        lines.append("contract violations: " + (", ".join(f"{p} {n}" for p, n in problems.items()) or "none"))
        for r in self.findings()[:40]:
            lines.append("  " + r.line() + (f" [{'; '.join(r.problems)}]" if r.problems else ""))
        return "\n".join(lines)


def warm_imports() -> None:
    """Import what the CLI needs once in the parent, so each forked child starts warm."""
    import onnxruntime  # noqa: F401 - imported, never started: forking before any session is safe
    import onnxsim  # noqa: F401
    import surgery.passes

    import surgery.apply
    import surgery.instruments
    from surgery.cli.main import build_parser
    from surgery.records import library_versions

    build_parser()  # imports every verb module
    library_versions()  # cached: the children skip the package-metadata lookups
    del surgery


def fuzz(mutants: int, *, seed: int = 0, timeout: float = 60.0, parallel: int = 1, root: Path | None = None,
         on_run: Callable[[Run], None] | None = None, verify_every: int = 2, first: int = 0) -> Report:
    """Make ``mutants`` mutants (numbered from ``first``) and run each through inspect and apply."""
    warm_imports()
    started = time.perf_counter()
    own = root is None
    work = Path(tempfile.mkdtemp(prefix="surgery-fuzz-")) if own else Path(root)
    try:
        jobs: list[tuple[Mutant, list[str]]] = []
        for index in range(first, first + mutants):
            mutant = make_mutant(index, seed, work)
            r = random.Random(seed * 7_919 + index)
            jobs += [(mutant, argv) for _, argv in commands_for(mutant, r, verify_every=verify_every)]
        runs = run_all(jobs, timeout=timeout, parallel=parallel, on_run=on_run)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    runs.sort(key=lambda r: (r.mutant, r.command[0]))
    return Report(mutants, runs, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="number of the first mutant (resume a run)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run before it counts as a hang")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--keep", metavar="DIR", help="keep the mutants in DIR (findings can be rerun there)")
    parser.add_argument("--progress", type=int, default=500, metavar="N", help="print counts every N runs")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()

    def on_run(run: Run) -> None:
        counts[run.outcome] += 1
        if run.outcome in (INTERNAL, HANG) or run.problems:
            print("FINDING", run.line(), run.problems or "", flush=True)
        total = sum(counts.values())
        if args.progress and total % args.progress == 0:
            print(f"[{total} runs] " + ", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES), flush=True)

    report = fuzz(args.mutants, seed=args.seed, timeout=args.timeout, parallel=args.jobs, root=root, on_run=on_run,
                  first=args.first)
    print(report.text())
    return 0 if not report.findings() else 1


if __name__ == "__main__":
    sys.exit(main())

