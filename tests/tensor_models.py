"""Models with a tensor in every place one can live, and a helper to point any of them at a file."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# where tensors live in everywhere(), as iter_tensors words it (a fragment of each)
SITES = ("initializer 'w' of graph", "initializer 'tw' of subgraph 'then_branch'",
         "attribute 'value' of node 'k'", "attribute 'value' of node 'ek'",
         "sparse initializer 's' (values)", "sparse initializer 's' (indices)",
         "attribute 'sparse_value' of node 'sk'")


def _f(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def everywhere(n: int = 512, *, sparse: bool = True) -> onnx.ModelProto:
    """x[n] → Add(w) → If(sum > 0: Add(tw, Constant k); else: Mul(Constant ek)) → Mul(Constant sk, sparse) → y.

    Tensors: a top-level initializer ``w``, an initializer ``tw`` inside the then-branch,
    Constant values ``k`` (then-branch) and ``ek`` (else-branch), a sparse initializer ``s``
    and a Constant ``sk`` with a sparse value. Each dense one holds ``n`` floats. Without
    ``sparse`` the sparse initializer is left out (the onnx checker's full check refuses it).
    """
    rng = np.random.default_rng(0)

    def arr(name: str) -> TensorProto:
        return numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), name)

    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], name="k", value=arr("k_value")),
         helper.make_node("Add", ["a", "tw"], ["t1"]), helper.make_node("Add", ["t1", "k"], ["t_out"])],
        "then", [], [_f("t_out", [n])], [arr("tw")])
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["ek"], name="ek", value=arr("ek_value")),
         helper.make_node("Mul", ["a", "ek"], ["e_out"])], "else", [], [_f("e_out", [n])])
    idx = numpy_helper.from_array(np.arange(0, n, 7, dtype=np.int64), "s_idx")
    sparse_w = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(len(idx.int64_data) or (n + 6) // 7,
                                                                         np.float32), "s"), idx, [n])
    sk_idx = numpy_helper.from_array(np.arange(0, n, 5, dtype=np.int64), "sk_idx")
    sk = helper.make_sparse_tensor(numpy_helper.from_array(np.full((n + 4) // 5, 2.0, np.float32), "sk_values"),
                                   sk_idx, [n])
    nodes = [helper.make_node("Add", ["x", "w"], ["a"]),
             helper.make_node("ReduceSum", ["a"], ["sum"], keepdims=0),
             helper.make_node("Greater", ["sum", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["b"], name="branch", then_branch=then_g, else_branch=else_g),
             helper.make_node("Constant", [], ["skv"], name="sk", sparse_value=sk),
             helper.make_node("Mul", ["b", "skv"], ["c"]),
             helper.make_node("Add", ["c", "s"] if sparse else ["c", "c"], ["y"])]
    graph = helper.make_graph(nodes, "everywhere", [_f("x", [n])], [_f("y", [n])],
                              [arr("w"), numpy_helper.from_array(np.zeros((), np.float32), "zero")],
                              sparse_initializer=[sparse_w] if sparse else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def point_at(tensor: TensorProto, location: str, offset: int | str | None = None,
             length: int | str | None = None) -> None:
    """Make ``tensor`` an external-data reference (its values dropped)."""
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            e = tensor.external_data.add()
            e.key, e.value = key, str(value)
