"""Cast graph outputs to another float type (the ICNet guide's fp16 output). Inexact.

    … → Resize → logits: float32      ⇒      … → Resize → Cast(to=float16) → logits: float16

Why: on the NPU the model computes in fp16, and an fp32 output costs a Cast and a 5HD→ND
TransData on a full-size tensor (ICNet's 19×1024×2048 logits: 160 MB at fp32) for
precision nobody uses; ATC's ``--output_type=FP16`` does the same at compile time. The
graph keeps each output's name (the tensor before the Cast is renamed); outputs change by
the rounding of the new type, which NumericParity reports as the deviation. Outputs that
are not floating point (an argmax map) are left, and so are those already of the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import UnknownNameError
from surgery.pass_infra import Pass, PassResult, option

from ._scope import Names

DTYPES = {"float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16,
          "float32": onnx.TensorProto.FLOAT}
FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


@dataclass(frozen=True, kw_only=True)
class OutputDtype(Pass):
    """Cast float graph outputs to dtype= (default float16, the ICNet guide's fp16 output; inexact)."""

    name: ClassVar[str] = "output_dtype"
    exact: ClassVar[bool] = False

    dtype: str = option("float16", help="the output type", choices=tuple(DTYPES))
    outputs: tuple[str, ...] = option((), help="output names to cast (default: every float output)")

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        target = DTYPES[self.dtype]
        present = [o.name for o in graph.output]
        for name in self.outputs:
            if name not in present:
                raise UnknownNameError("graph output", name, present)
        names = Names(model)
        counts: dict[str, int] = {}
        notes: list[str] = []
        renames: dict[str, str] = {}
        sources = {v.name for v in graph.input} | {t.name for t in graph.initializer}
        for out in graph.output:
            if self.outputs and out.name not in self.outputs:
                continue
            elem = out.type.tensor_type.elem_type if out.type.HasField("tensor_type") else 0
            label = f"output {out.name!r}"
            if elem == target:
                notes.append(f"{label} is already {self.dtype}")
                continue
            if out.name in sources:
                notes.append(f"{label} is a graph input or initializer itself: left")
                continue
            if elem not in FLOATS:
                notes.append(f"{label} is {onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else 'untyped'}, "
                             "not floating point: left")
                continue
            renames[out.name] = names.fresh(f"{out.name}_{onnx.helper.tensor_dtype_to_np_dtype(elem)}")
            out.type.tensor_type.elem_type = target
            kind = f"{onnx.helper.tensor_dtype_to_np_dtype(elem)}→{self.dtype}"
            counts[kind] = counts.get(kind, 0) + 1
        if renames:
            _rename_tensors(graph, renames)
            for old, new in renames.items():
                graph.node.append(onnx.helper.make_node("Cast", [new], [old], to=target,
                                                        name=names.fresh(f"{old}/Cast")))
        return PassResult(model, changed=bool(renames), counts=counts, notes=notes)


def _rename_tensors(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Rename tensors where they are produced and read (main graph, and subgraphs reading them)."""
    for node in graph.node:
        for k, name in enumerate(node.output):
            if name in renames:
                node.output[k] = renames[name]
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _rename_reads(body, renames)
    for vi in graph.value_info:
        if vi.name in renames:
            vi.name = renames[vi.name]


def _rename_reads(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    local = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {o for n in graph.node
                                                                                   for o in n.output}
    live = {k: v for k, v in renames.items() if k not in local}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in live:
                node.input[k] = live[name]
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _rename_reads(body, live)


__all__ = ["OutputDtype"]
