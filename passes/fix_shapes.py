"""Set static input shapes (trtexec syntax) or make the batch dimension dynamic. Exact.

    input[N,3,H,W]  →  input[1,3,96,96]        (shapes=input:1x3x96x96)
    input[1,3,96,96] →  input[batch,3,96,96]    (batch=dynamic)

Intermediate value_info and output shapes are re-inferred from the new inputs (where
inference cannot, an output keeps its rank with symbolic dims). A dimension given as a
name (``Nx3x96x96``) becomes symbolic. When the batch moves, the constants that pin it
(``Reshape [1, -1]``, a class token in a Concat, ...) are named as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery import validate
from surgery.batch_hazards import batch_hazards
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
        if self.batch and self.batch != "dynamic":
            if not (self.batch.isdigit() and int(self.batch) > 0):
                raise UsageError(f"pass fix_shapes: batch must be 'dynamic' or a positive number, got {self.batch!r}")
            validate.dim(self.batch, "pass fix_shapes: batch")  # a 20-digit batch is a typo, not a plan

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        inits = {t.name for t in graph.initializer}
        inputs = {v.name: v for v in graph.input if v.name not in inits}
        wanted = parse_shapes(self.shapes) if self.shapes else {}
        for name in wanted:
            if name not in inputs:
                raise UnknownNameError("graph input", name, inputs)
        changed: list[str] = []
        moved: list[tuple[list[int | str], list[int | str]]] = []
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
                moved.append((dims, new))
                notes.append(f"input {name!r}: {format_shape(dims)} → {format_shape(new)}")
        if not changed:
            return PassResult(model, changed=False, notes=["input shapes already as asked"])
        # a batch that moves (freed, or another number) meets whatever the export baked into constants
        hazards = batch_hazards(model) if any(old[0] != new[0] for old, new in moved if old and new) else []
        reinferred = _reinfer(model)
        counts = {"inputs": len(changed)}
        if reinferred is None:
            notes.append("shape inference failed: output dims left symbolic")
        else:
            counts["outputs_reinferred"] = reinferred
        return PassResult(model, changed=True, counts=counts, notes=notes + hazards, warnings=hazards)


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


def _symbolic(vi: onnx.ValueInfoProto, k: int, prefix: str = "out") -> None:
    """Keep a value's rank with every dim symbolic: stale sizes would be wrong, no shape fails the checker."""
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return
    _set_dims(vi, [f"{prefix}{k}_d{axis}" for axis in range(len(t.shape.dim))])


def _reinfer(model: onnx.ModelProto) -> int | None:
    """Clear stale value_info and output shapes, then infer them again from the new inputs.

    Returns how many outputs got an inferred shape, or None when inference failed (their dims
    are then symbolic, of the rank they had).
    """
    graph = model.graph
    saved_outputs = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in graph.output]
    del graph.value_info[:]
    _relax_subgraphs(graph)
    for o in graph.output:
        o.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        del graph.output[:]
        graph.output.extend(saved_outputs)
        for k, o in enumerate(graph.output):
            _symbolic(o, k)
        return None
    model.graph.value_info.extend(inferred.graph.value_info)
    n = 0
    for k, (o, io, saved) in enumerate(zip(graph.output, inferred.graph.output, saved_outputs, strict=True)):
        if io.type.tensor_type.HasField("shape"):
            o.type.tensor_type.shape.CopyFrom(io.type.tensor_type.shape)
            n += 1
        else:
            o.CopyFrom(saved)
            _symbolic(o, k)
    return n


def _relax_subgraphs(graph: onnx.GraphProto) -> None:
    """Loop / If / Scan bodies: drop their inferred shapes and make their inputs' and outputs' dims symbolic.

    An exported body declares the sizes it was traced at (a loop-carried ``1x4x8``);
    onnxruntime holds a body to them, so a new batch would fail inside the loop.
    """
    for node in graph.node:
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                del body.value_info[:]
                for k, vi in enumerate([*body.input, *body.output]):
                    _symbolic(vi, k, prefix=f"{body.name or 'body'}_")
                _relax_subgraphs(body)


def reshape_batch(model: onnx.ModelProto, batch: int) -> tuple[onnx.ModelProto, list[str]]:
    """``fix_shapes batch=N`` for benchmark sweeps: the re-shaped model and its batch hazards.

    The reshaper the CLI hands to :func:`surgery.bench.sweep` for static-batch models.
    """
    result = FixShapes(batch=str(batch))(model)
    return result.model, list(result.warnings)
