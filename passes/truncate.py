"""Make given intermediate tensors the graph outputs and drop everything after them.

    x → backbone → feat → avgpool → fc → logits   ⇒   x → backbone → feat

Tensors are named by tensor name, ``node_name:index`` or a node name (all its outputs).
Cutting a classifier head (avgpool + fc) off a backbone is the typical use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import UsageError
from surgery.graph import GraphIndex
from surgery.pass_infra import Pass, PassResult, option

from ._dead_code import sweep
from ._refs import resolve_tensor_ref


@dataclass(frozen=True, kw_only=True)
class Truncate(Pass):
    """Make given intermediate tensors the graph outputs and drop everything after them."""

    name: ClassVar[str] = "truncate"
    exact: ClassVar[bool] = True

    tensors: tuple[str, ...] = option(help="tensors that become the outputs: tensor names, node:index or node names")

    def validate(self) -> None:
        if not self.tensors:
            raise UsageError("pass truncate needs at least one tensor in tensors=...")

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        index = GraphIndex(graph)
        names: list[str] = []
        for ref in self.tensors:
            for t in resolve_tensor_ref(index, ref):
                if t not in names:
                    names.append(t)
        before = [o.name for o in graph.output]
        if names == before:
            return PassResult(model, changed=False, notes=["the given tensors already are the graph outputs"])
        types = _value_infos(model, names)
        del graph.output[:]
        graph.output.extend(types[n] for n in names)
        counts = {"outputs": len(names)}
        counts.update({k: v for k, v in sweep(graph).items() if v})
        notes = [f"output {n!r} is no longer an output" for n in before if n not in names]
        return PassResult(model, changed=True, counts=counts, notes=notes)


def _value_infos(model: onnx.ModelProto, names: list[str]) -> dict[str, onnx.ValueInfoProto]:
    """Typed ValueInfo for each tensor: from the graph, else from shape inference, else untyped."""
    g = model.graph
    known = {v.name: v for v in (*g.value_info, *g.output, *g.input)}
    known.update({t.name: onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in g.initializer})
    if any(n not in known or not known[n].type.HasField("tensor_type") for n in names):
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            known.update({v.name: v for v in inferred.graph.value_info})
        except Exception:  # shape inference is best effort here; untyped outputs still run
            pass
    out = {}
    for n in names:
        vi = onnx.ValueInfoProto()
        if n in known:
            vi.CopyFrom(known[n])
        vi.name = n
        out[n] = vi
    return out
