"""TopK ⇒ TopK with an int32 K and a Cast(int64) on its indices. Non-standard ONNX: an ATC workaround.

ATC's TopK implementation takes K as int32 and yields int32 indices; some CANN versions fail
to compile the standard int64 forms (auto-optimizer's KnowledgeTopkFix, off by default
there, "used when ATC fails"). The pass gives TopK an int32 K (an int32 copy of a constant
K, else a Cast) and reads the indices through a Cast to int64, so the rest of the graph
still sees int64.

Deviation: with ``k_int32`` (the default) the model is no longer standard ONNX: the onnx
checker's type inference and onnxruntime refuse an int32 K, so it cannot be verified here:
the step is reported unverified, naming the reason (apply it last and compile with ATC). With ``k_int32=false`` only the
indices Cast is added: standard, and identical on onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from onnx import TensorProto

from surgery.matcher import Editor, Match, PatternPass
from surgery.pass_infra import option


@dataclass(frozen=True, kw_only=True)
class TopkFix(PatternPass):
    """TopK ⇒ TopK with an int32 K and Cast(int64) indices: the ATC workaround (non-standard, inexact)."""

    name: ClassVar[str] = "topk_fix"
    exact: ClassVar[bool] = False

    k_int32: bool = option(True, help="make K int32 (what ATC wants; not standard ONNX: onnxruntime refuses it)")

    def nonstandard(self) -> str | None:
        return "TopK with an int32 K (what ATC wants; onnx and onnxruntime refuse it)" if self.k_int32 else None

    def check(self, g: Editor, m: Match) -> str | None:
        node = m.anchor
        if g.opset < 10 or len(node.input) < 2:
            return f"opset {g.opset}: K is an attribute"
        if not (self.k_int32 and not _k_is_int32(g, node.input[1])) and not _indices_need_cast(g, node):
            return "already fixed"
        return None

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        node = m.anchor
        counts: dict[str, int] = {}
        inputs, outputs = list(node.input), list(node.output)
        if self.k_int32 and not _k_is_int32(g, inputs[1]):
            k = g.constant(inputs[1])
            if k is not None:
                inputs[1] = g.add_initializer(k.astype(np.int32), f"{inputs[1]}_int32")
            else:
                inputs[1] = g.add_node("Cast", [inputs[1]], 1, name=f"{node.name or 'topk'}_k_int32",
                                       to=TensorProto.INT32).output[0]
            counts["TopK K → int32"] = 1
        indices = outputs[1] if len(outputs) > 1 else ""
        if _indices_need_cast(g, node):
            raw = g.unique_name(f"{indices}_raw")
            outputs[1] = raw
            counts["TopK indices Cast"] = 1
        g.replace_node(node, inputs=inputs, outputs=outputs)
        if outputs[1:] and outputs[1] != indices:
            g.add_node("Cast", [outputs[1]], [indices], name=f"{node.name or 'topk'}_indices_int64",
                       to=TensorProto.INT64)
        return counts


def _k_is_int32(g: Editor, k: str) -> bool:
    if g.dtype(k) == TensorProto.INT32:
        return True
    producer = g.producer_of(k)
    return producer is not None and producer.op_type == "Cast" and g.attr(producer, "to") == TensorProto.INT32


def _indices_need_cast(g: Editor, node) -> bool:
    if len(node.output) < 2 or not node.output[1]:
        return False
    indices = node.output[1]
    readers = g.consumers_of(indices)
    if g.is_output(indices):
        return True
    return any(r.op_type != "Cast" for r in readers)
