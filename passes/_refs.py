"""Resolve the ways users name a tensor: output name, output index, ``node:index`` (ATC style)."""

from __future__ import annotations

from surgery.errors import UnknownNameError, UsageError
from surgery.graph import GraphIndex


def resolve_output_ref(index: GraphIndex, ref: str) -> str:
    """A graph output named by its name, its index, or ATC-style ``node_name:output_index``."""
    outputs = index.output_names
    if ref in outputs:
        return ref
    if ref.isdigit():
        k = int(ref)
        if k >= len(outputs):
            raise UsageError(f"output index {k} is out of range: the graph has {len(outputs)} outputs")
        return outputs[k]
    tensor = _node_output(index, ref)
    if tensor is None:
        raise UnknownNameError("graph output", ref, outputs)
    if tensor not in outputs:
        raise UsageError(f"{ref} is tensor {tensor!r}, which is not a graph output; use the truncate pass to "
                         "make an intermediate tensor an output")
    return tensor


def resolve_tensor_ref(index: GraphIndex, ref: str) -> list[str]:
    """Any tensor: a tensor name, ``node:index``, or a node name (all its outputs)."""
    if ref in index.producer or ref in index.inputs or ref in index.initializers:
        return [ref]
    tensor = _node_output(index, ref)
    if tensor is not None:
        return [tensor]
    by_name = index.node_by_name()
    if ref in by_name:
        return [o for o in index.nodes[by_name[ref]].output if o]
    raise UnknownNameError("tensor or node", ref, list(index.producer) + list(by_name))


def _node_output(index: GraphIndex, ref: str) -> str | None:
    node_name, sep, slot = ref.rpartition(":")
    if not sep or not slot.isdigit():
        return None
    by_name = index.node_by_name()
    if node_name not in by_name:
        raise UnknownNameError("node", node_name, by_name)
    node = index.nodes[by_name[node_name]]
    k = int(slot)
    if k >= len(node.output) or not node.output[k]:
        raise UsageError(f"node {node_name!r} ({node.op_type}) has no output {k} (it has {len(node.output)})")
    return node.output[k]
