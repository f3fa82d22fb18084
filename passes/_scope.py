"""One graph's index and a batch of edits, for the passes that analyse a whole graph instead of matching a pattern.

``align_channels`` follows the padding of each Conv through every reader, and
``output_dtype`` renames graph outputs: neither is a match → check → rewrite of one site,
so they do not go through :mod:`surgery.matcher`. They read the graph through a
:class:`Scope` (the linear-time index plus constants, torch's Identity aliases of shared
weights seen through) and queue their rewrites in an :class:`Edit`, which rebuilds the
node list once: linear in the graph size whatever the number of sites.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from surgery.graph import GraphIndex, subgraph_outer_inputs

DEFAULT_DOMAINS = ("", "ai.onnx")


class Scope:
    """A graph with its producer/consumer index and constant lookup."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.index = GraphIndex(graph)

    @staticmethod
    def label(node: onnx.NodeProto) -> str:
        """``Conv conv1``, as notes name a node."""
        return f"{node.op_type} {node.name or '(unnamed)'}"

    def initializer(self, name: str) -> onnx.TensorProto | None:
        return self.index.initializers.get(name)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it is an initializer or a Constant node's output (through Identity), else None."""
        if not name:
            return None
        if name in self.index.initializers and name not in self.index.inputs:
            return numpy_helper.to_array(self.index.initializers[name])
        i = self.index.producer.get(name)
        if i is None:
            return None
        node = self.index.nodes[i]
        if node.op_type == "Identity" and node.domain in DEFAULT_DOMAINS:  # torch aliases shared weights
            return self.constant(node.input[0])
        return constant_node_value(node) if node.op_type == "Constant" else None


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The tensor a ``Constant`` node holds (``value``, ``value_float(s)``, ``value_int(s)``), or None."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), np.int64)
    return None


def attrs_of(node: onnx.NodeProto) -> dict[str, object]:
    """A node's attributes as Python values (strings decoded)."""
    out: dict[str, object] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


def is_default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in DEFAULT_DOMAINS


class Names:
    """Fresh node and tensor names that collide with nothing in the model (subgraphs included)."""

    def __init__(self, model: onnx.ModelProto):
        self.taken: set[str] = set()
        self._add_graph(model.graph)

    def _add_graph(self, graph: onnx.GraphProto) -> None:
        taken = self.taken
        taken.update(v.name for v in graph.input)
        taken.update(v.name for v in graph.output)
        taken.update(t.name for t in graph.initializer)
        for node in graph.node:
            taken.add(node.name)
            taken.update(node.output)
            for attr in node.attribute:
                for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    self._add_graph(body)

    def fresh(self, base: str) -> str:
        """``base`` if unused, else ``base_1``, ``base_2``, ...; the name is taken from then on."""
        name, k = base, 0
        while name in self.taken or not name:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


class Edit:
    """Node replacements queued against a scope's node indices, applied in one rebuild.

    ``replace(i, nodes)`` puts ``nodes`` where node ``i`` was (an empty list deletes it);
    ``before(i, nodes)`` inserts them ahead of node ``i`` (``i`` = the node count: at the end).
    Graph order stays topological as long as the new nodes read only what node ``i``'s
    position can see.
    """

    def __init__(self, scope: Scope):
        self.scope = scope
        self._replace: dict[int, list[onnx.NodeProto]] = {}
        self._before: dict[int, list[onnx.NodeProto]] = {}
        self.initializers: list[onnx.TensorProto] = []
        self._unused: set[str] = set()

    def replace(self, i: int, nodes: list[onnx.NodeProto]) -> None:
        self._replace[i] = list(nodes)

    def before(self, i: int, nodes: list[onnx.NodeProto]) -> None:
        self._before.setdefault(i, []).extend(nodes)

    def add_initializer(self, array: np.ndarray, name: str) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def maybe_unused(self, *names: str) -> None:
        """Tensors the rewrite stopped reading: dropped at commit if nothing reads them any more."""
        self._unused.update(n for n in names if n)

    def commit(self) -> None:
        graph = self.scope.graph
        if self._replace or self._before:
            nodes: list[onnx.NodeProto] = []
            for i, node in enumerate(self.scope.index.nodes):
                nodes.extend(self._before.get(i, ()))
                nodes.extend(self._replace.get(i, (node,)))
            nodes.extend(self._before.get(len(self.scope.index.nodes), ()))
            del graph.node[:]
            graph.node.extend(nodes)
        graph.initializer.extend(self.initializers)
        if self._unused:
            self._drop_unread()
        self._replace, self._before, self.initializers, self._unused = {}, {}, [], set()

    def _drop_unread(self) -> None:
        graph = self.scope.graph
        read = {o.name for o in graph.output}
        for node in graph.node:
            read.update(node.input)
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                read.update(subgraph_outer_inputs(node))
        dead = self._unused - read
        dead_inits = {t.name for t in graph.initializer if t.name in dead}
        if dead_inits:
            kept = [t for t in graph.initializer if t.name not in dead_inits]
            del graph.initializer[:]
            graph.initializer.extend(kept)
            # IR < 4 lists initializers among the inputs too: an orphan entry would become a real input
            stale = [k for k, v in enumerate(graph.input) if v.name in dead_inits]
            for k in reversed(stale):
                del graph.input[k]
        nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
        if len(nodes) != len(graph.node):
            del graph.node[:]
            graph.node.extend(nodes)


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element types of the tensors the graph declares (inputs, outputs, value_info, initializers)."""
    g = model.graph
    out = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.input, *g.value_info, *g.output)
           if vi.type.HasField("tensor_type")}
    out.update({t.name: t.data_type for t in g.initializer})
    return out
