"""The editor rules rewrite through: one graph's producer/consumer index, typed queries, and edits
written back once (node order, orphaned constants, stale value_info) at :meth:`Editor.commit`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from surgery.graph import SUBGRAPH_OPS, subgraph_outer_inputs

from .fold import FOLDABLE, MAX_FOLD_DEPTH, fold_node
from .pattern import _py, _schema_default
from .state import DEFAULT_DOMAINS, _constant_node_value, _ModelState, _Scope, tensor_proto, tensor_value


def node_label(node: onnx.NodeProto) -> str:
    """``Op name`` as notes name a node."""
    return f"{node.op_type} {node.name or '(unnamed)'}"


class Editor:
    """One graph's index plus the edits rules make through it; :meth:`commit` writes them back once.

    Node ids are positions in the original node list; nodes a rewrite adds get ids after them.
    """

    def __init__(self, graph: onnx.GraphProto, state: _ModelState, parent: _Scope | None = None):
        self.graph = graph
        self.state = state
        self.parent = parent
        self._folded: dict[str, np.ndarray | None] = {}  # shape expressions: cleared by every edit
        self._leaves: dict[str, np.ndarray | None] = {}  # initializers and Constant nodes: they never change
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.n_original = len(self.nodes)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.removed: set[int] = set()
        self.touched: set[int] = set()
        self.before: dict[int, int] = {}  # new node id -> original node id it goes before (-1: at the end)
        self.cursor = -1
        self.changed = False
        self._order_broken = False
        self._forgotten: set[str] = set()
        self._dead_inputs: set[str] = set()
        self._replaced: dict[str, str] = {}  # graph outputs whose readers were sent elsewhere
        self._value_info: dict[str, onnx.ValueInfoProto] | None = None
        self._ids: dict[int, int] = {}  # id() of each node object -> its id (the objects live in self.nodes)
        for i, node in enumerate(self.nodes):
            self._ids[id(node)] = i
            self._register(i, node)
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.input_names = {v.name for v in graph.input}
        self.output_names = [o.name for o in graph.output]
        self._output_set = set(self.output_names)

    # -- index upkeep
    def _register(self, i: int, node: onnx.NodeProto) -> None:
        for out in node.output:
            if out:
                self.producer[out] = i
        names = [x for x in node.input if x]
        if (node.op_type in SUBGRAPH_OPS or node.domain not in DEFAULT_DOMAINS) and any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            names.extend(subgraph_outer_inputs(node))
        for name in names:
            self.consumers.setdefault(name, []).append(i)

    def _unregister_read(self, i: int, name: str) -> None:
        """Node ``i`` may have stopped reading ``name``: drop it from the consumers unless it still does."""
        node = self.nodes[i]
        if name in node.input:
            return
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute) and \
                name in subgraph_outer_inputs(node):
            return
        users = self.consumers.get(name)
        if users:
            self.consumers[name] = [j for j in users if j != i]

    def id_of(self, node: onnx.NodeProto) -> int:
        """The id of a node this editor handed out (or created)."""
        i = self._ids.get(id(node))
        if i is None or self.nodes[i] is not node:
            raise KeyError(f"{node_label(node)} is not a node of this graph")
        return i

    def alive(self, i: int) -> bool:
        return i not in self.removed

    # -- queries
    @property
    def opset(self) -> int:
        """The default-domain opset of the model."""
        return self.state.opset

    def producer_of(self, name: str) -> onnx.NodeProto | None:
        """The live node producing ``name`` in this graph (None for inputs, initializers, outer names)."""
        i = self.producer.get(name)
        return None if i is None or i in self.removed else self.nodes[i]

    def consumer_ids(self, name: str) -> list[int]:
        seen: set[int] = set()
        out = []
        for i in self.consumers.get(name, ()):
            if i not in self.removed and i not in seen:
                seen.add(i)
                out.append(i)
        return out

    def _read(self, name: str) -> bool:
        users = self.consumers.get(name)
        return bool(users) and not self.removed.issuperset(users)

    def consumers_of(self, name: str) -> list[onnx.NodeProto]:
        """Live nodes reading ``name`` (nodes whose subgraphs read it count), each once, in order of first use."""
        return [self.nodes[i] for i in self.consumer_ids(name)]

    def is_output(self, name: str) -> bool:
        """Whether ``name`` is an output of this graph."""
        return name in self._output_set

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is constant: an initializer (not overridable as a graph input), a
        Constant node's output, or a small shape expression over static dims (``Shape → Gather → Div``:
        what exporters emit for ``x[:, :C // 2]`` with a dynamic batch), here or in an enclosing graph.
        The array is shared between callers: copy it before changing it."""
        value = self._fold(name, 0)
        if value is None or (value.dtype == object and any(v is None for v in value.reshape(-1))):
            return None
        return value.astype(np.int64) if value.dtype == object else value

    def _fold(self, name: str, depth: int) -> np.ndarray | None:
        """The value of ``name``; object arrays hold the known dims of a partly static shape (None: unknown)."""
        if not name:
            return None
        if name in self._leaves:
            return self._leaves[name]
        if name in self._folded:
            return self._folded[name]
        value: np.ndarray | None = None
        if name in self.producer:
            node = self.producer_of(name)
            if node is not None and node.op_type == "Constant":
                value = self._leaves[name] = _constant_node_value(node)
                return value
            elif node is not None and node.op_type in FOLDABLE and depth < MAX_FOLD_DEPTH and \
                    node.domain in DEFAULT_DOMAINS and len(node.output) == 1:
                try:
                    value = fold_node(self, node, depth + 1)
                    if value is not None and not isinstance(value, np.ndarray):  # np.take of one element
                        value = np.asarray(value, dtype=object if value is None else None)
                except (ValueError, IndexError, TypeError, ZeroDivisionError):  # a malformed expression: not constant
                    value = None
        elif name in self.initializers:
            # IR < 4: an initializer listed as input can be fed at run time
            value = None if name in self.input_names else tensor_value(self.initializers[name])
            self._leaves[name] = value
            return value
        elif name not in self.input_names and self.parent is not None:
            value = self.parent.constant(name)
        self._folded[name] = value
        return value

    def is_constant(self, name: str) -> bool:
        """Whether ``name`` is constant (as :meth:`constant` decides), without converting initializers."""
        if name in self.initializers and name not in self.producer:
            return name not in self.input_names
        node = self.producer_of(name)
        if node is not None and node.op_type == "Constant":
            return True
        return self.constant(name) is not None

    def constant_ints(self, name: str) -> list[int] | None:
        """A constant integer tensor as a flat list of ints (None when not constant or not integer)."""
        value = self.constant(name)
        if value is None or value.dtype.kind not in "iu":
            return None
        return value.reshape(-1).tolist()

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        """An attribute's Python value (strings decoded), else ``default``, else the schema's default."""
        for a in node.attribute:
            if a.name == name:
                return _py(onnx.helper.get_attribute_value(a))
        if default is not None:
            return default
        return _schema_default(node.op_type, self.opset, name) if node.domain in DEFAULT_DOMAINS else None

    def has_attr(self, node: onnx.NodeProto, name: str) -> bool:
        return any(a.name == name for a in node.attribute)

    def _value_infos(self) -> dict[str, onnx.ValueInfoProto]:
        if self._value_info is None:
            vi = {v.name: v for v in self.graph.value_info}
            vi.update({v.name: v for v in self.graph.input})
            vi.update({v.name: v for v in self.graph.output})
            self._value_info = vi
        return self._value_info

    def _type(self, name: str) -> onnx.TypeProto | None:
        if name in self._forgotten:
            return None
        v = self._value_infos().get(name)
        if v is not None and v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            return v.type
        return self.state.inferred().get(name)

    def dtype(self, name: str, *, infer: bool = True) -> int | None:
        """``name``'s element type (onnx.TensorProto enum), from initializers, value_info or shape inference
        (run once per model; ``infer=False`` answers None instead of running it)."""
        if name in self.initializers:
            return self.initializers[name].data_type
        node = self.producer_of(name)
        if node is not None and node.op_type == "Constant":
            value = _constant_node_value(node)
            if value is not None:
                return onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
        if not infer and name not in self._value_infos() and self.state._inferred is None:
            return None
        t = self._type(name)
        if t is None:
            return None if self.parent is None else self.parent.dtype(name)
        return t.tensor_type.elem_type or None

    def shape(self, name: str) -> tuple[int | str | None, ...] | None:
        """``name``'s shape: ints for known dims, the symbol or None for others; None when the rank is unknown."""
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        value = self.constant(name)
        if value is not None:
            return tuple(value.shape)
        t = self._type(name)
        if t is None:
            return None if self.parent is None else self.parent.shape(name)
        tt = t.tensor_type
        if not tt.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)

    # -- names
    def unique_name(self, hint: str) -> str:
        """A tensor or node name used nowhere in the model (``hint``, else ``hint_1``, ``hint_2``…)."""
        names = self.state.names
        name, k = hint, 0
        while name in names or not name:
            k += 1
            name = f"{hint}_{k}"
        names.add(name)
        return name

    # -- edits
    def add_initializer(self, value: np.ndarray, hint: str) -> str:
        """Add ``value`` as a new initializer with a unique name; returns the name."""
        name = self.unique_name(hint)
        tensor = tensor_proto(value, name)
        self.graph.initializer.append(tensor)
        self.initializers[name] = self.graph.initializer[-1]
        self.changed = True
        return name

    def add_node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1, *,
                 name: str | None = None, before: onnx.NodeProto | None = None, domain: str = "",
                 **attrs: Any) -> onnx.NodeProto:
        """Create a node; ``outputs`` is a list of names or a count of fresh names. It goes before
        ``before`` (default: the current match's anchor, or first sibling)."""
        base = name or op_type
        node_name = self.unique_name(base)
        if isinstance(outputs, int):
            outputs = [self.unique_name(f"{node_name}_out{k}" if outputs > 1 else f"{node_name}_out")
                       for k in range(outputs)]
        else:
            for out in outputs:
                self.state.names.add(out)
        node = onnx.NodeProto(op_type=op_type, name=node_name, input=list(inputs), output=list(outputs))
        if domain:
            node.domain = domain
        if attrs:  # helper.make_node is slow for the attribute-free nodes most rewrites add
            node.attribute.extend(onnx.helper.make_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
        return self._insert(node, before)

    def replace_node(self, node: onnx.NodeProto, *, inputs: Sequence[str] | None = None,
                     outputs: Sequence[str] | None = None, **attrs: Any) -> onnx.NodeProto:
        """Swap ``node`` for a copy at its place with other inputs, outputs or attributes (None drops one)."""
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if inputs is not None:
            del copy.input[:]
            copy.input.extend(inputs)
        if outputs is not None:
            del copy.output[:]
            copy.output.extend(outputs)
            for out in outputs:
                self.state.names.add(out)
        for name, value in attrs.items():
            kept = [a for a in copy.attribute if a.name != name]
            del copy.attribute[:]
            copy.attribute.extend(kept)
            if value is not None:
                copy.attribute.append(onnx.helper.make_attribute(name, value))
        self.remove(node)
        return self._insert(copy, before=node)

    def _insert(self, node: onnx.NodeProto, before: onnx.NodeProto | None) -> onnx.NodeProto:
        i = len(self.nodes)
        if before is not None:
            j = self.id_of(before)
            self.before[i] = self.before.get(j, j)
        else:
            self.before[i] = self.cursor
        for out in node.output:
            if out and out in self.producer and self.producer[out] not in self.removed:
                other = self.nodes[self.producer[out]]
                raise ValueError(f"{out!r} is already produced by {node_label(other)}: remove it first")
        self.nodes.append(node)
        for out in node.output:  # a name a removed Constant had may be produced anew
            self._leaves.pop(out, None)
        self._ids[id(node)] = i
        self._register(i, node)
        self.touched.add(i)
        self.changed = True
        return node

    def remove(self, *nodes: onnx.NodeProto) -> None:
        """Drop nodes. Their outputs stop existing (a new node may produce those names); constant inputs
        (initializers, Constant nodes, and nodes that only fed them) no other node reads go with them at commit."""
        self._folded.clear()
        for node in nodes:
            i = self.id_of(node)
            if i in self.removed:
                continue
            self.removed.add(i)
            for out in node.output:
                if self.producer.get(out) == i:
                    del self.producer[out]
            self._dead_inputs.update(x for x in node.input if x)
            self.changed = True

    def set_input(self, node: onnx.NodeProto, k: int, name: str) -> None:
        """Make input ``k`` of ``node`` read ``name`` (appending empty optional inputs as needed)."""
        self._folded.clear()
        i = self.id_of(node)
        while len(node.input) <= k:
            node.input.append("")
        old = node.input[k]
        node.input[k] = name
        if old:
            self._dead_inputs.add(old)
            self._unregister_read(i, old)
        if name:
            self.consumers.setdefault(name, []).append(i)
        self.touched.add(i)
        self.changed = True

    def set_inputs(self, node: onnx.NodeProto, names: Sequence[str]) -> None:
        """Replace all inputs of ``node``."""
        self._folded.clear()
        i = self.id_of(node)
        old = [x for x in node.input if x]
        self._dead_inputs.update(old)
        del node.input[:]
        node.input.extend(names)
        for name in set(old) - set(names):
            self._unregister_read(i, name)
        for name in names:
            if name and i not in self.consumers.get(name, ()):
                self.consumers.setdefault(name, []).append(i)
        self.touched.add(i)
        self.changed = True

    def set_attr(self, node: onnx.NodeProto, name: str, value: Any) -> None:
        """Set (or add) an attribute."""
        new = onnx.helper.make_attribute(name, value)
        for k, a in enumerate(node.attribute):
            if a.name == name:
                node.attribute[k].CopyFrom(new)
                break
        else:
            node.attribute.append(new)
        self.touched.add(self.id_of(node))
        self.changed = True

    def drop_attr(self, node: onnx.NodeProto, name: str) -> bool:
        """Remove an attribute; returns whether it was there."""
        for k, a in enumerate(node.attribute):
            if a.name == name:
                del node.attribute[k]
                self.touched.add(self.id_of(node))
                self.changed = True
                return True
        return False

    def replace_uses(self, old: str, new: str) -> None:
        """Every reader of ``old`` reads ``new`` instead (subgraph bodies included). When ``old`` is a graph
        output with no producer left, an Identity ``new → old`` keeps the output's name."""
        for i in self.consumer_ids(old):
            node = self.nodes[i]
            hit = False
            for k, x in enumerate(node.input):
                if x == old:
                    node.input[k] = new
                    hit = True
            if _rename_in_subgraphs(node, old, new) or hit:
                self.consumers.setdefault(new, []).append(i)
                self.touched.add(i)
        self.consumers.pop(old, None)
        self._dead_inputs.add(old)
        if self.is_output(old) and old != new:
            self._replaced[old] = new
        self.changed = True

    def forget_type(self, name: str) -> None:
        """``name``'s type or shape changed: drop what value_info says about it."""
        self._forgotten.add(name)
        self.changed = True

    # -- commit
    def commit(self) -> None:
        """Write the edits back: node order, dropped constants, stale value_info. The editor is spent after."""
        if not self.changed:
            return
        self._keep_output_names()
        self._drop_dead_constants()
        if self.removed or len(self.nodes) > self.n_original:
            order = self._order()
            kept = [self.nodes[i] for i in order]
            if not _is_topological(kept, self._known_names()):
                kept = _toposort(kept, self._known_names())
            del self.graph.node[:]
            self.graph.node.extend(kept)
        self._clean_value_info()

    def _keep_output_names(self) -> None:
        # a graph output whose producer went away after replace_uses: an Identity keeps the name
        for old, new in self._replaced.items():
            if self.producer_of(old) is not None or old in self.input_names or old in self.initializers:
                continue
            seen = {old}
            while new in self._replaced and self.producer_of(new) is None and new not in seen:
                seen.add(new)
                new = self._replaced[new]
            self.cursor = -1
            self.add_node("Identity", [new], [old], name=f"{old}_keep_name")

    def _order(self) -> list[int]:
        before: dict[int, list[int]] = {}
        for i in range(self.n_original, len(self.nodes)):
            before.setdefault(self.before.get(i, -1), []).append(i)
        order: list[int] = []
        for i in range(self.n_original):
            order.extend(j for j in before.get(i, ()) if j not in self.removed)
            if i not in self.removed:
                order.append(i)
        order.extend(j for j in before.get(-1, ()) if j not in self.removed)
        return order

    def _known_names(self) -> set[str]:
        return self.input_names | set(self.initializers)

    def _drop_dead_constants(self) -> None:
        dead_inits: set[str] = set()
        pending = list(self._dead_inputs)
        while pending:
            name = pending.pop()
            if self._read(name) or name in self._output_set:
                continue
            if name in self.initializers and name not in self.input_names:
                dead_inits.add(name)
                continue
            node = self.producer_of(name)
            if node is None or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                   for a in node.attribute):
                continue
            outs = [o for o in node.output if o]
            if any(self._read(o) or o in self._output_set for o in outs):
                continue
            # nothing reads it any more since this rewrite: it goes, and what only it read is looked at next
            i = self.producer[name]
            self.removed.add(i)
            for o in outs:
                if self.producer.get(o) == i:
                    del self.producer[o]
            pending.extend(x for x in node.input if x)
        if dead_inits:
            kept = [t for t in self.graph.initializer if t.name not in dead_inits]
            del self.graph.initializer[:]
            self.graph.initializer.extend(kept)
            for name in dead_inits:
                del self.initializers[name]

    def _clean_value_info(self) -> None:
        if not len(self.graph.value_info):
            return
        stale = set(self._forgotten)
        for name in self._dead_inputs:
            if name not in self.producer:
                stale.add(name)
        for i in self.removed:
            stale.update(o for o in self.nodes[i].output if o not in self.producer)
        if not stale:
            return
        kept = [v for v in self.graph.value_info if v.name not in stale]
        if len(kept) != len(self.graph.value_info):
            del self.graph.value_info[:]
            self.graph.value_info.extend(kept)


def _rename_in_subgraphs(node: onnx.NodeProto, old: str, new: str) -> bool:
    """Rename reads of outer name ``old`` inside ``node``'s subgraphs (where not shadowed)."""
    hit = False
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            defined = {v.name for v in g.input} | {t.name for t in g.initializer}
            defined.update(o for n in g.node for o in n.output)
            if old in defined:
                continue
            for n in g.node:
                for k, x in enumerate(n.input):
                    if x == old:
                        n.input[k] = new
                        hit = True
                hit = _rename_in_subgraphs(n, old, new) or hit
            for o in g.output:
                if o.name == old:  # a body output passing the outer value straight through
                    o.name = new
                    hit = True
    return hit


def _is_topological(nodes: list[onnx.NodeProto], known: set[str]) -> bool:
    produced_later: set[str] = {o for n in nodes for o in n.output if o}
    seen: set[str] = set()
    for n in nodes:
        for x in n.input:
            if x and x in produced_later and x not in seen and x not in known:
                return False
        seen.update(n.output)
    return True


def _toposort(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """Stable Kahn sort: nodes keep their relative order unless an input forces otherwise."""
    import heapq

    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for k, n in enumerate(nodes):
        deps = {producer[x] for x in n.input if x and x in producer and x not in known} - {k}
        waiting[k] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(k)
    ready = [k for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    out: list[onnx.NodeProto] = []
    while ready:
        k = heapq.heappop(ready)
        out.append(nodes[k])
        for u in users.get(k, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(out) != len(nodes):
        raise ValueError("the rewrite made a cycle in the graph")
    return out
