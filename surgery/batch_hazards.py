"""Where a graph pins its batch: constants that fix a size an exporter traced at batch 1.

A model exported at a static batch often bakes that batch into constants. Freeing the
batch (``fix_shapes batch=dynamic``) then fails, or silently computes the wrong thing, at
those nodes:

- ``Reshape(x, [1, -1])``: a literal first dimension (the batch folded into the rest);
- ``Concat(token, x)`` where one input is a constant (a ViT class token ``[1, 1, D]``);
- ``Expand`` / ``Tile`` / ``ConstantOfShape`` built wholly from constants, used with batch data;
- ``LSTM`` / ``GRU`` / ``RNN`` whose initial state is a constant (its batch axis is fixed);
- ``Flatten(axis=0)``: the batch merged into one row.

This scan names them; the batch proof (run at other batch sizes) decides. Messages about
constant shapes keep the words "constant target shape", which the bench reads.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

# ops with no inputs that are still not constant
_SOURCES = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                      "Bernoulli"})
_BUILDERS = frozenset({"Expand", "Tile", "ConstantOfShape"})
_RNNS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}  # input slots of initial_h (and initial_c)


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {(node.name or node.output[0])!r}"


def constant_tensors(graph: onnx.GraphProto) -> tuple[set[str], dict[str, np.ndarray]]:
    """Names of tensors computable without the graph inputs, and the values of those that are literal.

    Initializers that are also graph inputs count as constants: IR < 4 models list every weight among
    the inputs, and a batch fixed by one is fixed all the same.
    """
    values: dict[str, np.ndarray] = {}
    for t in graph.initializer:
        if t.data_type != onnx.TensorProto.STRING and np.prod(t.dims, dtype=np.int64) <= 64:
            values[t.name] = numpy_helper.to_array(t)  # small ones only: shapes and tokens' sizes
    const = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            const.update(node.output)
            for a in node.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    values[node.output[0]] = numpy_helper.to_array(a.t)
            continue
        if node.op_type in _SOURCES or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                           for a in node.attribute):
            continue
        inputs = [x for x in node.input if x]
        if inputs and all(x in const for x in inputs):
            const.update(o for o in node.output if o)
    return const, values


def _shape_of(name: str, graph: onnx.GraphProto, values: dict[str, np.ndarray]) -> list[int] | None:
    if name in values:
        return list(values[name].shape)
    for t in graph.initializer:
        if t.name == name:
            return list(t.dims)
    return None


def batch_hazards(model: onnx.ModelProto) -> list[str]:
    """One line per node where a constant pins the batch (see the module docstring); empty when none."""
    graph = model.graph
    const, values = constant_tensors(graph)
    producer = {o: n for n in graph.node for o in n.output if o}
    notes: list[str] = []
    for node in graph.node:
        inputs = [x for x in node.input if x]
        live = [x for x in inputs if x not in const]
        if not live:
            continue  # a node of constants only: folded, no batch flows through it
        op = node.op_type
        if op == "Reshape" and len(node.input) > 1 and node.input[1] in values:
            shape = values[node.input[1]]
            if shape.ndim == 1 and shape.size and int(shape[0]) > 0 and node.input[0] not in const:
                notes.append(f"{_label(node)} has a constant target shape {shape.tolist()}: its first dimension is "
                             f"a literal {int(shape[0])}, so another batch fails or is folded into the other dims")
        elif op == "Concat":
            fixed = [x for x in inputs if x in const]
            if fixed:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                shape = _shape_of(fixed[0], graph, values)
                what = f"a constant {fixed[0]!r}" + (f" of shape {shape}" if shape is not None else "")
                if axis != 0:
                    notes.append(f"{_label(node)} joins {what} with batch data on axis {axis}: the constant's "
                                 f"batch is fixed (a class token expanded at export), so another batch fails there")
        elif op == "Flatten":
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if axis == 0:
                notes.append(f"{_label(node)} has axis=0: it folds the batch into one row")
        if op in _RNNS:
            for slot in _RNNS[op]:
                if len(node.input) > slot and node.input[slot] and node.input[slot] in const:
                    shape = _shape_of(node.input[slot], graph, values)
                    size = f" of shape {shape}" if shape is not None else ""
                    notes.append(f"{_label(node)} starts from a constant state {node.input[slot]!r}{size}: its "
                                 f"batch axis (1) is fixed, so another batch fails there")
        for x in inputs:
            src = producer.get(x)
            if x in const and src is not None and src.op_type in _BUILDERS and op != "Concat":
                target = src.input[1] if len(src.input) > 1 and src.op_type != "ConstantOfShape" else src.input[0]
                literal = values.get(target)
                shape = f" {literal.tolist()}" if literal is not None else ""
                notes.append(f"{_label(src)} has a constant target shape{shape} built from constants and feeds "
                             f"{_label(node)} with batch data: the batch is pinned there")
    return list(dict.fromkeys(notes))
