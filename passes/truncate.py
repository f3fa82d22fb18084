"""Make given intermediate tensors the graph outputs and drop everything after them.

    x → backbone → feat → avgpool → fc → logits   ⇒   x → backbone → feat

Tensors are named by tensor name, ``node_name:index`` or a node name (all its outputs).
Cutting a classifier head (avgpool + fc) off a backbone is the typical use. New outputs get
their dtype and rank from the graph, shape inference or a run, dims symbolic where only a run
knows them (a Loop's outputs); the dropped and added outputs are declared in the PassResult.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import UsageError
from surgery.graph import GraphIndex
from surgery.pass_infra import Pass, PassResult, option

from ._dead_code import sweep
from ._output_types import output_value_infos
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
        types, notes = output_value_infos(model, names)
        del graph.output[:]
        graph.output.extend(types[n] for n in names)
        counts = {"outputs": len(names)}
        counts.update({k: v for k, v in sweep(graph).items() if v})
        dropped = [n for n in before if n not in names]
        notes += [f"output {n!r} is no longer an output" for n in dropped]
        kept = [n for n in names if n in before]
        return PassResult(model, changed=True, counts=counts, notes=notes, dropped_outputs=dropped,
                          added_outputs=[n for n in names if n not in before],
                          reordered_outputs=kept != [n for n in before if n in names])
