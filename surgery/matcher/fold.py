"""Constant folding of the small shape expressions exporters emit (``Shape → Gather → Div → Unsqueeze``).

Values are numpy arrays; a partly static shape is an object array whose unknown dims are
None, so ``Gather(Shape(x), 1)`` is a constant when dim 1 is static even if the batch is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

# ops whose value Editor.constant computes from constant inputs and static dims
FOLDABLE = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Add", "Sub", "Mul", "Div",
                      "Cast", "Identity"})
MAX_FOLD_DEPTH = 16


def fold_node(g: Any, node: onnx.NodeProto, depth: int) -> np.ndarray | None:
    """The value of one foldable node's output (object arrays: partly static shapes), or None.

    ``g`` is the :class:`~surgery.matcher.editor.Editor` (typed loosely: the editor imports this module).
    """
    op = node.op_type
    if op == "Shape":
        shape = g.shape(node.input[0])
        if shape is None:
            return None
        dims = np.array([d if isinstance(d, int) else None for d in shape], dtype=object)
        start, end = g.attr(node, "start", 0), g.attr(node, "end")
        return dims[start:end] if end is not None else dims[start:]
    ins = [g._fold(x, depth) if x else None for x in node.input]
    known = [v is not None and (v.dtype != object or all(e is not None for e in v.reshape(-1))) for v in ins]
    if op in ("Identity", "Cast") and ins[0] is not None:
        if op == "Cast" and known[0]:
            return ins[0].astype(onnx.helper.tensor_dtype_to_np_dtype(g.attr(node, "to")))
        return ins[0] if op == "Identity" or g.attr(node, "to") in (onnx.TensorProto.INT64,
                                                                      onnx.TensorProto.INT32) else None
    if op == "Gather" and ins[0] is not None and known[1:2] == [True]:
        return np.take(ins[0], ins[1].astype(np.int64), axis=int(g.attr(node, "axis", 0)))
    if op in ("Unsqueeze", "Squeeze") and ins[0] is not None:
        axes = g.attr(node, "axes") if g.opset < 13 else (
            [int(v) for v in ins[1].reshape(-1)] if len(ins) > 1 and known[1] else None)
        if op == "Unsqueeze":
            return np.expand_dims(ins[0], tuple(axes)) if axes is not None else None
        return np.squeeze(ins[0], tuple(axes)) if axes is not None else np.squeeze(ins[0])
    if op == "Concat" and all(v is not None for v in ins):
        return np.concatenate(ins, axis=int(g.attr(node, "axis")))
    if op == "Slice" and ins[0] is not None and ins[0].ndim == 1 and g.opset >= 10 and all(known[1:3]):
        axes = [int(v) for v in ins[3].reshape(-1)] if len(ins) > 3 and ins[3] is not None else [0]
        steps = [int(v) for v in ins[4].reshape(-1)] if len(ins) > 4 and ins[4] is not None else [1]
        if axes not in ([0], [-1]) or len(steps) != 1:
            return None
        return ins[0][int(ins[1].reshape(-1)[0]):int(ins[2].reshape(-1)[0]):steps[0]]
    if op in ("Add", "Sub", "Mul", "Div") and len(ins) == 2 and all(known):
        a, b = (np.asarray(v.astype(np.int64) if v.dtype == object else v) for v in ins)
        if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
            return None
        if op == "Div":
            q = np.floor_divide(a, b)
            return q + ((np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0)))  # ONNX truncates toward zero
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, b)
    return None
