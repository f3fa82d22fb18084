"""The default-domain opset → ``target``, with onnx's version converter. Exact (verified by parity).

    opset 13: Split(x, split) ⇒ opset 11: Split(x) <split = [...]>  (each op through its adapter)

Why: ATC documents opset 11 as its comfort zone, and models exported at 13-17 meet ops
whose newer form it rejects. The converter walks subgraphs too.

onnx's converter has no downgrade adapter for many ops whose newer version only widened
their types (Concat 13 → 11 stops it: "No Adapter From Version $13 for Concat"), so it
refuses most opset-13 models. When it stops at such an op, and every node of that op
already fits the target version's schema (same inputs, outputs and attributes, and its
tensor types allowed there), those nodes are kept as they are and the conversion is run
again; the notes say which ops were kept. Ops whose meaning changed under the same
signature (Softmax, LogSoftmax, Hardmax at 13) are never kept. The converter is known to
write wrong models silently for some adapters, so this pass claims no more than the
pipeline's checker, strict shape inference and onnxruntime parity verify after it; a
model it cannot convert is a one-line error naming the op it stopped at.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import PassError, first_line
from surgery.graph import iter_nodes, opset_version
from surgery.pass_infra import Pass, PassResult, option
from surgery.tensors import skeleton, tensor_meta
from surgery.validate import integer

MIN_TARGET = 7  # the converter's oldest adapters
HIDDEN = "surgery.convert_opset.kept"  # a private domain the converter leaves alone
SAME_SIGNATURE_NEW_MEANING = frozenset({"Softmax", "LogSoftmax", "Hardmax"})
NO_ADAPTER = re.compile(r"No Adapter (?:From|To) Version \$\d+ for (\w+)")


@dataclass(frozen=True, kw_only=True)
class ConvertOpset(Pass):
    """Convert the default-domain opset to target= (default 11, ATC's) with onnx's version converter."""

    name: ClassVar[str] = "convert_opset"
    exact: ClassVar[bool] = True
    tune_default: ClassVar[bool] = False

    target: int = option(11, help="the opset to convert to (ATC reads 11 best)")

    def validate(self) -> None:
        integer(self.target, "pass convert_opset: target", minimum=MIN_TARGET,
                maximum=onnx.defs.onnx_opset_version())

    def call(self, model: onnx.ModelProto) -> PassResult:
        current = opset_version(model)
        if current == self.target:
            return PassResult(model, changed=False, notes=[f"the model is already at opset {current}"])
        if current == 0:
            return PassResult(model, changed=False, notes=["the model imports no default-domain opset"])
        before = Counter(_signature(n) for n in iter_nodes(model.graph))
        kept: list[str] = []
        types: dict[str, str] | None = None
        while True:
            hidden = _hide(model, set(kept))
            try:
                converted = _convert(model, self.target)
            except PassError as exc:
                op = NO_ADAPTER.search(str(exc))
                if op is None or op.group(1) in kept or self.target > current:
                    raise
                types = _types(model) if types is None else types
                why = _incompatible(model, op.group(1), self.target, types)
                if why:
                    raise PassError(f"{exc.detail}; its nodes cannot be kept as they are: {why}") from None
                kept.append(op.group(1))
                continue
            finally:
                _unhide(model, hidden)
            break
        _unhide(converted, hidden)
        model.CopyFrom(converted)
        # a site is a node an adapter rewrote (new inputs, attributes or op); the rest only change version
        counts: dict[str, int] = {}
        for sig, n in (Counter(_signature(n) for n in iter_nodes(model.graph)) - before).items():
            counts[sig[0]] = counts.get(sig[0], 0) + n
        notes = [f"opset {current} → {self.target}; nodes rewritten by adapters: "
                 + (", ".join(f"{op} {n}" for op, n in sorted(counts.items())) or "none")]
        notes += [f"{op}: the converter has no adapter from {current}; its nodes already fit opset {self.target} "
                  "(same inputs, attributes and types) and are kept as they are" for op in kept]
        return PassResult(model, changed=True, counts=counts or {"opset": 1}, notes=notes)


def _convert(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, target)
    except Exception as exc:  # the converter raises RuntimeError/ConvertError from C++ with a multi-line text
        raise PassError(f"onnx's version converter cannot take opset {opset_version(model)} to {target}: "
                        f"{first_line(exc, 300)}") from None


def _signature(node: onnx.NodeProto) -> tuple:
    return (node.op_type, len(node.input), tuple(sorted(a.name for a in node.attribute)))


def _hide(model: onnx.ModelProto, ops: set[str]) -> list[onnx.NodeProto]:
    """Move the nodes of ``ops`` into a private domain the converter does not touch; returns them."""
    if not ops:
        return []
    nodes = [n for n in iter_nodes(model.graph) if n.op_type in ops and n.domain in ("", "ai.onnx")]
    for n in nodes:
        n.domain = HIDDEN
    model.opset_import.append(onnx.helper.make_opsetid(HIDDEN, 1))
    return nodes


def _unhide(model: onnx.ModelProto, hidden: list[onnx.NodeProto]) -> None:
    if not hidden:
        return
    for n in iter_nodes(model.graph):
        if n.domain == HIDDEN:
            n.domain = ""
    imports = [o for o in model.opset_import if o.domain != HIDDEN]
    del model.opset_import[:]
    model.opset_import.extend(imports)


def _incompatible(model: onnx.ModelProto, op: str, target: int, types: dict[str, str]) -> str | None:
    """Why the nodes of ``op`` do not fit its schema at ``target`` as they are (None: they do)."""
    if op in SAME_SIGNATURE_NEW_MEANING:
        return f"{op} changed meaning between versions"
    try:
        schema = onnx.defs.get_schema(op, target, "")
    except onnx.defs.SchemaError:
        return f"{op} does not exist at opset {target}"
    constraints = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for node in iter_nodes(model.graph):
        if node.op_type != op or node.domain not in ("", "ai.onnx"):
            continue
        names = {a.name for a in node.attribute}
        extra = sorted(names - set(schema.attributes))
        if extra:
            return f"attribute {extra[0]} is not in its opset-{target} form"
        missing = sorted(n for n, a in schema.attributes.items() if a.required and n not in names)
        if missing:
            return f"its opset-{target} form requires attribute {missing[0]}"
        inputs = list(node.input)
        while inputs and not inputs[-1]:
            inputs.pop()
        if not schema.min_input <= len(inputs) <= schema.max_input:
            return f"{len(inputs)} inputs; its opset-{target} form takes {schema.min_input}..{schema.max_input}"
        if not schema.min_output <= len(node.output) <= schema.max_output:
            return f"{len(node.output)} outputs; its opset-{target} form gives {schema.min_output}..{schema.max_output}"
        optional = onnx.defs.OpSchema.FormalParameterOption.Optional
        for names_, formals in ((inputs, schema.inputs), (list(node.output), schema.outputs)):
            for k, name in enumerate(names_):
                formal = formals[min(k, len(formals) - 1)]
                if not name:
                    if formal.option != optional:
                        return f"its {formal.name} is left out, which its opset-{target} form requires"
                    continue
                allowed = constraints.get(formal.type_str, {formal.type_str})
                actual = types.get(name)
                if actual is None:
                    return f"the type of {name!r} is unknown"
                if actual not in allowed:
                    return f"{name!r} is {actual}, which its opset-{target} form does not take"
    return None


def _types(model: onnx.ModelProto) -> dict[str, str]:
    """``tensor(float)``-style type strings of the main graph's tensors, from shape inference."""
    def strip(t: onnx.TensorProto) -> onnx.TensorProto | None:
        return tensor_meta(t) if math.prod(t.dims) > 4096 else None

    out: dict[str, str] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model, strip))  # type: ignore[arg-type]
    except Exception:  # unknown types: every kept op is refused with its reason
        return out
    g = inferred.graph
    for vi in (*g.input, *g.value_info, *g.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            out[vi.name] = f"tensor({_type_name(vi.type.tensor_type.elem_type)})"
    for t in model.graph.initializer:
        out[t.name] = f"tensor({_type_name(t.data_type)})"
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] not in out:
            value = next((a.t for a in n.attribute if a.name == "value" and a.HasField("t")), None)
            if value is not None:
                out[n.output[0]] = f"tensor({_type_name(value.data_type)})"
    return out


def _type_name(elem_type: int) -> str:
    """FLOAT → float, FLOAT16 → float16, INT64 → int64: the names schema type strings use."""
    return onnx.TensorProto.DataType.Name(elem_type).lower()


__all__ = ["ConvertOpset"]
