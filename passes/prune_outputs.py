"""Keep only the given graph outputs, then drop what became dead: the graph-level ``atc --out_nodes``.

    Graph(out_a, out_b, out_c)  →  Graph(out_a[renamed])

Outputs are named by output name, by index (``0``), or ATC-style as ``node_name:index``
(the ICNet guide's ``Resize_317:0``). ``names`` renames the kept outputs in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import UsageError
from surgery.graph import GraphIndex
from surgery.pass_infra import Pass, PassResult, option

from ._dead_code import sweep
from ._output_types import is_typed, output_value_infos
from ._refs import resolve_output_ref


@dataclass(frozen=True, kw_only=True)
class PruneOutputs(Pass):
    """Keep only the given graph outputs (by name, index or node:index) and drop what became dead."""

    name: ClassVar[str] = "prune_outputs"
    exact: ClassVar[bool] = True

    outputs: tuple[str, ...] = option(help="outputs to keep: names, indices or node_name:index, in the new order")
    names: tuple[str, ...] = option((), help="new names for the kept outputs, in the same order")

    def validate(self) -> None:
        if not self.outputs:
            raise UsageError("pass prune_outputs needs at least one output in outputs=...")
        if self.names and len(self.names) != len(self.outputs):
            raise UsageError(f"pass prune_outputs: {len(self.names)} names for {len(self.outputs)} outputs")

    def call(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        index = GraphIndex(graph)
        keep = [resolve_output_ref(index, ref) for ref in self.outputs]
        if len(set(keep)) != len(keep):
            raise UsageError(f"pass prune_outputs: an output is named twice in {', '.join(self.outputs)}")
        by_name = {o.name: o for o in graph.output}
        before = [o.name for o in graph.output]
        untyped = [n for n in keep if not is_typed(by_name[n])]  # the checker wants a dtype and a shape on each
        typed, type_notes = output_value_infos(model, untyped) if untyped else ({}, [])
        kept_vis = [typed.get(name, by_name[name]) for name in keep]
        del graph.output[:]
        graph.output.extend(kept_vis)
        removed = [n for n in before if n not in keep]
        reordered = [n for n in before if n in keep] != keep

        counts = {"outputs_removed": len(removed)}
        counts.update({k: v for k, v in sweep(graph, index).items() if v})  # before renaming: index is by name
        renamed = {}
        for old, new in zip(keep, self.names, strict=False):
            if old != new:
                rename_tensor(graph, old, new)
                renamed[new] = old
        if renamed:
            counts["outputs_renamed"] = len(renamed)
        notes = [f"removed output {n!r}" for n in removed] + type_notes
        if not removed and not renamed and not reordered:
            notes.append("every graph output is already kept: nothing to prune")
        changed = bool(removed or renamed or reordered or typed)
        return PassResult(model, changed=changed, counts={k: v for k, v in counts.items() if v} if changed else {},
                          notes=notes, renamed_outputs=renamed, dropped_outputs=removed, reordered_outputs=reordered)


def rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere in the top-level graph (producer, consumers, outputs, value_info)."""
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input} | {
        t.name for t in graph.initializer}
    if new in taken:
        raise UsageError(f"cannot rename {old!r} to {new!r}: a tensor of that name exists")
    for node in graph.node:
        for k, x in enumerate(node.output):
            if x == old:
                node.output[k] = new
        for k, x in enumerate(node.input):
            if x == old:
                node.input[k] = new
    for coll in (graph.output, graph.value_info):
        for v in coll:
            if v.name == old:
                v.name = new
