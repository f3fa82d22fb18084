"""Set static input shapes (trtexec syntax) or make the batch dimension dynamic. Exact.

    input[N,3,H,W]  →  input[1,3,96,96]        (shapes=input:1x3x96x96)
    input[1,3,96,96] →  input[batch,3,96,96]    (batch=dynamic)

Intermediate value_info and output shapes are re-inferred from the new inputs.
A dimension given as a name (``Nx3x96x96``) becomes symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.errors import UnknownNameError, UsageError
from surgery.pass_infra import Pass, PassResult, option
from surgery.shapes import format_shape, parse_shapes


@dataclass(frozen=True, kw_only=True)
class FixShapes(Pass):
    """Set static input shapes (trtexec syntax) or make the batch dimension dynamic."""

    name: ClassVar[str] = "fix_shapes"
    exact: ClassVar[bool] = True

    shapes: str | None = option(None, help="input shapes, trtexec syntax: name:1x3x96x96[,name2:...]")
    batch: str | None = option(None, help="'dynamic', or a number: set dimension 0 of every input")
    batch_name: str = option("batch", help="symbol used for a dynamic batch dimension")

    def validate(self) -> None:
        if not self.shapes and not self.batch:
            raise UsageError("pass fix_shapes needs shapes=name:1x3x96x96 or batch=dynamic|N")
        if self.shapes:
            parse_shapes(self.shapes)
        if self.batch and self.batch != "dynamic" and not (self.batch.isdigit() and int(self.batch) > 0):
            raise UsageError(f"pass fix_shapes: batch must be 'dynamic' or a positive number, got {self.batch!r}")

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        inits = {t.name for t in graph.initializer}
        inputs = {v.name: v for v in graph.input if v.name not in inits}
        wanted = parse_shapes(self.shapes) if self.shapes else {}
        for name in wanted:
            if name not in inputs:
                raise UnknownNameError("graph input", name, inputs)
        changed: list[str] = []
        notes: list[str] = []
        for name, vi in inputs.items():
            dims = _dims(vi)
            new = list(dims)
            if name in wanted:
                if dims and len(wanted[name]) != len(dims):
                    raise UsageError(f"input {name!r} has rank {len(dims)}, shape {format_shape(wanted[name])} "
                                     f"has rank {len(wanted[name])}")
                new = list(wanted[name])
            if self.batch and new:
                new[0] = self.batch_name if self.batch == "dynamic" else int(self.batch)
            if new != dims:
                _set_dims(vi, new)
                changed.append(name)
                notes.append(f"input {name!r}: {format_shape(dims)} → {format_shape(new)}")
        if not changed:
            return PassResult(model, changed=False, notes=["input shapes already as asked"])
        if self.batch:
            notes.extend(_constant_batch_hazards(model))
        reinferred = _reinfer(model)
        counts = {"inputs": len(changed)}
        if reinferred is None:
            notes.append("shape inference failed: output shapes left unknown")
        else:
            counts["outputs_reinferred"] = reinferred
        return PassResult(model, changed=True, counts=counts, notes=notes)


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim]


def _set_dims(vi: onnx.ValueInfoProto, dims: list[int | str]) -> None:
    shape = vi.type.tensor_type.shape
    shape.ClearField("dim")
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        else:
            dim.dim_param = d


def _reinfer(model: onnx.ModelProto) -> int | None:
    """Clear stale value_info and output shapes, then infer them again from the new inputs."""
    graph = model.graph
    saved_outputs = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in graph.output]
    del graph.value_info[:]
    for o in graph.output:
        o.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        del graph.output[:]
        graph.output.extend(saved_outputs)
        for o in graph.output:
            o.type.tensor_type.ClearField("shape")
        return None
    model.graph.value_info.extend(inferred.graph.value_info)
    n = 0
    for o, io in zip(graph.output, inferred.graph.output, strict=True):
        if io.type.tensor_type.HasField("shape"):
            o.type.tensor_type.shape.CopyFrom(io.type.tensor_type.shape)
            n += 1
    return n


def _constant_batch_hazards(model: onnx.ModelProto) -> list[str]:
    """Reshapes whose constant target shape pins the batch: a dynamic batch will fail there."""
    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            consts[node.output[0]] = node.attribute[0].t
    notes = []
    for node in model.graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in consts:
            shape = onnx.numpy_helper.to_array(consts[node.input[1]])
            if shape.ndim == 1 and shape.size and shape[0] not in (0, -1) and np.all(shape != -1):
                notes.append(f"Reshape {node.name or node.output[0]!r} has a constant target shape "
                             f"{shape.tolist()}: a different batch will fail there")
    return notes


def reshape_batch(model: onnx.ModelProto, batch: int) -> tuple[onnx.ModelProto, list[str]]:
    """``fix_shapes batch=N`` for benchmark sweeps: the re-shaped model and its batch hazard notes.

    The reshaper the CLI hands to :func:`surgery.bench.sweep` for static-batch models.
    """
    result = FixShapes(batch=str(batch))(model)
    return result.model, [n for n in result.notes if "constant target shape" in n]
