"""int64 regions ⇒ int32 regions with Casts at their boundaries. Exact: refuses where a value could overflow.

Ascend runs most int64 arithmetic on the AI CPU and int32 on the AI Core; exported shape
arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape) is int64 throughout
(auto-optimizer's KnowledgeTypeCast). This pass re-types the int64 tensors computed by
*type-generic* ops (whose result in int32 equals the int64 one when nothing overflows:
Add, Sub, Mul, Div, Mod, Neg, Abs, Max, Min, comparisons, Concat, Gather, Slice, Reshape,
Squeeze, Unsqueeze, Transpose, Expand, Tile, Where, ReduceMax/Min, Range …) to int32.

- Shape outputs (and other int64-only producers: ArgMax, NonZero, TopK indices, Cast to
  int64) are untouched; a Cast to int32 is inserted where the region reads them.
- Inputs that only take int64 (Reshape's shape, Slice's starts/ends, Unsqueeze's axes, Expand's
  shape…) and graph outputs get a Cast back to int64; index inputs that take either type
  (Gather's indices, Cast, Shape) read the int32 tensor directly. int64 constants the region
  reads are re-typed copies.
- **Overflow**: a value range is propagated through the graph by interval arithmetic
  (constants: their values; Shape: a dim, below 2**31; indices: below 2**31; a Cast from a
  narrower integer: that type's range; a graph input or anything else: unknown). A node is
  converted only when its inputs' and its output's ranges fit int32; otherwise it stays int64
  and the notes say why (``Mul m: range [0, 4.6e18] exceeds int32``).

float64 → float32, auto-optimizer's other strategy, is inexact and not done here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto as T

from surgery.matcher import Editor, edit_graphs, node_label
from surgery.pass_infra import Pass, PassResult

I32 = (-(2**31), 2**31 - 1)
DIM = (0, 2**31 - 1)  # a dimension or an index into one: runtimes index with int32
NOTE_LIMIT = 40

# op -> (slots typed like the output ("all": every input), output slots re-typed with them)
GENERIC: dict[str, tuple[tuple[int, ...] | str, tuple[int, ...]]] = {
    **{op: ("all", (0,)) for op in ("Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Sum", "Concat")},
    **{op: ((0,), (0,)) for op in ("Neg", "Abs", "Identity", "Gather", "GatherElements", "Slice", "Reshape",
                                    "Squeeze", "Unsqueeze", "Transpose", "Flatten", "Expand", "Tile",
                                    "ReduceMax", "ReduceMin")},
    **{op: ((0, 1), ()) for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")},
    "Where": ((1, 2), (0,)),
    "Range": ((0, 1, 2), (0,)),
}
# inputs that take int32 or int64 alike (indices, and ops that read any type)
EITHER = {"Gather": {1}, "GatherElements": {1}, "ScatterElements": {1}, "OneHot": {0, 1}, "Cast": {0},
          "Shape": {0}, "Size": {0}}
# int64-only producers whose values are indices into a dim
INDEX_PRODUCERS = {"ArgMax": 0, "ArgMin": 0, "NonZero": 0, "TopK": 1}
NARROW_INTS = {T.INT32: I32, T.INT16: (-(2**15), 2**15 - 1), T.INT8: (-128, 127), T.UINT8: (0, 255),
               T.UINT16: (0, 2**16 - 1), T.BOOL: (0, 1)}

Range = tuple[int, int] | None


@dataclass(frozen=True, kw_only=True)
class CastInt64ToInt32(Pass):
    """int64 computations → int32 with Casts at the region boundaries; refuses where a value could overflow (exact)."""

    name: ClassVar[str] = "cast_int64_to_int32"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        report = _Report()
        changed = edit_graphs(model, lambda g, where: _convert(g, where, report))
        notes = report.notes[:NOTE_LIMIT]
        if len(report.notes) > NOTE_LIMIT:
            notes.append(f"… and {len(report.notes) - NOTE_LIMIT} more int64 nodes kept")
        if not report.candidates:
            notes.insert(0, "no int64 computation in the graph")
        return PassResult(model, changed=changed, counts=report.counts, notes=notes)


@dataclass
class _Report:
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    candidates: int = 0

    def add(self, key: str, n: int) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n


def _t_slots(node: onnx.NodeProto) -> list[int]:
    slots, _ = GENERIC[node.op_type]
    return list(range(len(node.input))) if slots == "all" else [k for k in slots if k < len(node.input)]


def _convert(g: Editor, where: str, report: _Report) -> None:
    ranges: dict[str, Range] = {}
    members: list[onnx.NodeProto] = []
    member_outputs: set[str] = set()
    for i in range(g.n_original):
        node = g.nodes[i]
        if node.domain not in ("", "ai.onnx"):
            continue
        verdict = _member(g, node, ranges)
        if verdict is None:
            members.append(node)
            member_outputs.update(node.output[k] for k in GENERIC[node.op_type][1] if k < len(node.output))
        elif verdict:
            report.candidates += 1
            report.notes.append(f"{node_label(node)}: {verdict}{where}")
        _propagate(g, node, ranges)
    if not members:
        return
    report.candidates += len(members)
    renamed = {t: g.unique_name(f"{t}_int32") for t in member_outputs}
    entering: dict[str, str] = {}

    def int32_of(x: str) -> str:
        if x in renamed:
            return renamed[x]
        if x not in entering:
            value = g.constant(x)
            if value is not None:
                entering[x] = g.add_initializer(value.astype(np.int32), f"{x}_int32")
            else:
                entering[x] = g.add_node("Cast", [x], 1, name=f"{x}_to_int32", to=T.INT32).output[0]
                report.add("Cast (into int32)", 1)
        return entering[x]

    for node in members:
        inputs = list(node.input)
        for k in _t_slots(node):
            if inputs[k] and g.dtype(inputs[k]) == T.INT64:
                inputs[k] = int32_of(inputs[k])
        outputs = [renamed.get(o, o) for o in node.output]
        g.replace_node(node, inputs=inputs, outputs=outputs)
    report.add("int64 ops → int32", len(members))
    back = 0
    for old, new in renamed.items():
        int64_readers = []
        for reader in g.consumers_of(old):
            slots = [k for k, x in enumerate(reader.input) if x == old]
            if slots and all(k in EITHER.get(reader.op_type, ()) for k in slots):
                for k in slots:
                    g.set_input(reader, k, new)
            else:
                int64_readers.append(reader)
        if int64_readers or g.is_output(old):
            g.add_node("Cast", [new], [old], name=f"{old}_to_int64", to=T.INT64)
            back += 1
    report.add("Cast (back to int64)", back)


def _member(g: Editor, node: onnx.NodeProto, ranges: dict[str, Range]) -> str | bool | None:
    """None: convert it; a string: an int64 generic node kept, and why; False: not a candidate at all."""
    if node.op_type not in GENERIC:
        return False
    slots = _t_slots(node)
    typed = [node.input[k] for k in slots if node.input[k]]
    if not typed or any(g.dtype(x) != T.INT64 for x in typed) or not _takes_int32(node.op_type, g.opset):
        return False
    outs = [node.output[k] for k in GENERIC[node.op_type][1] if k < len(node.output)]
    for x in typed:
        r = _range_of(g, x, ranges)
        if not _fits(r):
            return f"input {x!r} {_describe(r)}"
    r = _output_range(g, node, ranges)
    if outs and not _fits(r):
        return f"its result {_describe(r)}"
    return None


@functools.cache
def _takes_int32(op: str, opset: int) -> bool:
    """Whether the op's schema at this opset lets its typed inputs be int32 (Sum and Max take ints only from 12-13)."""
    try:
        schema = onnx.defs.get_schema(op, opset, "")
    except Exception:  # an op the installed onnx does not know at this opset
        return False
    k = 0 if GENERIC[op][0] == "all" else GENERIC[op][0][0]
    formal = schema.inputs[min(k, len(schema.inputs) - 1)]
    allowed = {c.type_param_str: list(c.allowed_type_strs) for c in schema.type_constraints}
    return "tensor(int32)" in allowed.get(formal.type_str, [formal.type_str])


def _fits(r: Range) -> bool:
    return r is not None and I32[0] <= r[0] and r[1] <= I32[1]


def _describe(r: Range) -> str:
    return "has an unknown range" if r is None else f"has range [{r[0]:.3g}, {r[1]:.3g}], beyond int32"


def _range_of(g: Editor, name: str, ranges: dict[str, Range]) -> Range:
    if name in ranges:
        return ranges[name]
    value = g.constant(name)
    if value is not None and np.issubdtype(value.dtype, np.integer):
        r = (int(value.min()), int(value.max())) if value.size else (0, 0)
        ranges[name] = r
        return r
    return None


def _propagate(g: Editor, node: onnx.NodeProto, ranges: dict[str, Range]) -> None:
    """Record the value range of the node's int64 outputs."""
    op = node.op_type
    if op == "Shape":
        ranges[node.output[0]] = DIM
    elif op == "Size":
        ranges[node.output[0]] = None
    elif op in INDEX_PRODUCERS:
        k = INDEX_PRODUCERS[op]
        if k < len(node.output) and node.output[k]:
            ranges[node.output[k]] = (-DIM[1], DIM[1]) if op == "NonZero" else DIM
    elif op == "Cast":
        src = g.dtype(node.input[0])
        ranges[node.output[0]] = NARROW_INTS.get(src) if src is not None else None
        if src == T.INT64:
            ranges[node.output[0]] = _range_of(g, node.input[0], ranges)
    elif op == "Constant":
        _range_of(g, node.output[0], ranges)
    elif op in GENERIC:
        r = _output_range(g, node, ranges)
        for k in GENERIC[op][1]:
            if k < len(node.output):
                ranges[node.output[k]] = r


def _output_range(g: Editor, node: onnx.NodeProto, ranges: dict[str, Range]) -> Range:
    op = node.op_type
    ins = [_range_of(g, node.input[k], ranges) if node.input[k] else None for k in _t_slots(node)]
    if any(r is None for r in ins) or not ins:
        return None
    lo = [r[0] for r in ins]  # type: ignore[index]
    hi = [r[1] for r in ins]  # type: ignore[index]
    if op in ("Add", "Sum"):
        return sum(lo), sum(hi)
    if op == "Sub":
        return lo[0] - hi[1], hi[0] - lo[1]
    if op == "Mul":
        corners = [a * b for a in (lo[0], hi[0]) for b in (lo[1], hi[1])]
        return min(corners), max(corners)
    if op == "Neg":
        return -hi[0], -lo[0]
    if op == "Abs":
        return (0 if lo[0] <= 0 <= hi[0] else min(abs(lo[0]), abs(hi[0]))), max(abs(lo[0]), abs(hi[0]))
    if op == "Div":
        m = max(abs(lo[0]), abs(hi[0]))  # |x / y| <= |x| for integer y != 0
        return -m, m
    if op == "Mod":
        m = min(max(abs(lo[0]), abs(hi[0])), max(abs(lo[1]), abs(hi[1])))
        return -m, m
    if op in ("Max", "Min"):
        f = max if op == "Max" else min
        return f(lo), f(hi)
    if op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        return 0, 1
    return min(lo), max(hi)  # data movement and Range: values come from the inputs
