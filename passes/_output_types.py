"""Typed ValueInfo for tensors that become graph outputs (truncate, prune_outputs).

The onnx checker demands an element type and a shape on every graph output, but shape
inference cannot type every tensor (a Loop's outputs, tensors behind data-dependent
Reshapes). In order:

1. the graph's own ValueInfo (inputs, outputs, value_info) or the initializer;
2. onnx shape inference;
3. a run on onnxruntime with a generated sample: the dtype and the rank, dims left symbolic
   (one run's sizes are not the tensor's shape);
4. else the element type alone, and a note (the instruments check such outputs as legal).
"""

from __future__ import annotations

import re

import onnx

from surgery.errors import UsageError


def is_typed(vi: onnx.ValueInfoProto | None) -> bool:
    """Whether a graph output's ValueInfo satisfies the checker: an element type and a shape (or a non-tensor type)."""
    if vi is None or not vi.HasField("type"):
        return False
    if not vi.type.HasField("tensor_type"):
        return True  # sequences, maps, optionals: the checker takes them as they are
    t = vi.type.tensor_type
    return t.elem_type != onnx.TensorProto.UNDEFINED and t.HasField("shape")


def _better(a: onnx.ValueInfoProto | None, b: onnx.ValueInfoProto) -> bool:
    """Whether ``b`` says more than ``a`` (an element type where ``a`` has none, a shape where it has none)."""
    if a is None or not a.HasField("type"):
        return b.HasField("type")
    if not b.type.HasField("tensor_type") or not a.type.HasField("tensor_type"):
        return False
    ta, tb = a.type.tensor_type, b.type.tensor_type
    return (not ta.elem_type and bool(tb.elem_type)) or (not ta.HasField("shape") and tb.HasField("shape"))


def output_value_infos(model: onnx.ModelProto, names: list[str]) -> tuple[dict[str, onnx.ValueInfoProto], list[str]]:
    """ValueInfo for each of ``names`` (call before editing the outputs), and notes on how each was typed."""
    g = model.graph
    known: dict[str, onnx.ValueInfoProto] = {}
    for vi in (*g.value_info, *g.input, *g.output):
        if _better(known.get(vi.name), vi) or vi.name not in known:
            known[vi.name] = vi
    for t in g.initializer:
        known[t.name] = onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
    notes: list[str] = []
    if any(not is_typed(known.get(n)) for n in names):
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # best effort: a run or the element type alone still make a usable output
            inferred = None
        if inferred is not None:
            for vi in (*inferred.graph.value_info, *inferred.graph.output):
                if vi.name in names and _better(known.get(vi.name), vi):
                    known[vi.name] = vi
    untyped = [n for n in names if not is_typed(known.get(n))]
    if untyped:
        ran, why = _types_from_a_run(model, untyped)
        for n in untyped:
            if n in ran:
                known[n] = ran[n]
                notes.append(f"output {n!r}: dtype and rank from a run on onnxruntime (dims left symbolic)")
            else:
                notes.append(f"output {n!r}: rank unknown to shape inference and to a run ({why})")
    out = {}
    for n in names:
        vi = onnx.ValueInfoProto()
        if n in known:
            vi.CopyFrom(known[n])
        vi.name = n
        out[n] = vi
    return out, notes


def _types_from_a_run(model: onnx.ModelProto, names: list[str]) -> tuple[dict[str, onnx.ValueInfoProto], str]:
    """Run the model once with ``names`` as extra outputs: their dtype and rank, dims symbolic."""
    import numpy as np

    from surgery.parity import Session, integer_ranges, model_inputs, random_feed
    from surgery.shapes import shapes_at

    try:
        specs = model_inputs(model)
        feed = random_feed(specs, shapes_at(specs, None, None), 0, "uniform", integer_ranges(model))
        values = Session(model, extra_outputs=names).run(feed, names)
    except (UsageError, RuntimeError) as exc:
        return {}, str(exc)
    out = {}
    for n in names:
        value = values[n]
        if isinstance(value, list):
            continue  # a sequence: leave it to the graph's type
        arr = np.asarray(value)
        try:
            elem = onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
        except (KeyError, TypeError, ValueError):
            continue
        stem = re.sub(r"\W+", "_", n).strip("_") or "t"
        out[n] = onnx.helper.make_tensor_value_info(n, elem, [f"{stem}_d{k}" for k in range(arr.ndim)])
    return out, "not a tensor"
