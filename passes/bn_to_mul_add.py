"""t1:Transpose → bn:BatchNormalization → t2:Transpose ⇒ Mul → Add. Exact (to rounding).

Conditions: the two Transposes cancel (t2's perm inverts t1's); the BatchNormalization is in
inference mode with constant scale, bias, mean and variance; t1 and bn feed nothing else.
The Mul and Add coefficients, ``s = scale / sqrt(var + eps)`` and ``b = bias - mean * s``,
are shaped to broadcast on the axis the BatchNormalization normalised, in the layout before
t1, so both Transposes go (auto-optimizer's KnowledgeBNFolding; BatchNorm over a transposed
1-D or sequence tensor is what makes ATC insert TransData around it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.matcher import Editor, Match, PatternPass


@dataclass(frozen=True, kw_only=True)
class BnToMulAdd(PatternPass):
    """t1:Transpose → bn:BatchNormalization → t2:Transpose ⇒ Mul → Add, when the Transposes cancel (exact)."""

    name: ClassVar[str] = "bn_to_mul_add"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        t1, bn, t2 = m.nodes
        if len(g.consumers_of(t1.output[0])) != 1 or g.is_output(t1.output[0]):
            return "the first Transpose feeds other nodes too"
        if len(g.consumers_of(bn.output[0])) != 1 or g.is_output(bn.output[0]):
            return "the BatchNormalization feeds other nodes too"
        if any(o for o in bn.output[1:]) or g.attr(bn, "training_mode", 0):
            return "the BatchNormalization is in training mode"
        p, q = g.attr(t1, "perm"), g.attr(t2, "perm")
        if p is None or q is None:
            return "a Transpose has no perm (reversal of unknown rank)"
        if len(p) != len(q) or any(p[q[i]] != i for i in range(len(q))):
            return f"the Transposes do not cancel (perm {p} then {q})"
        if len(p) < 2:
            return "rank below 2"
        for k, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")):
            if not g.is_constant(bn.input[k]):
                return f"{what} is not a constant"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        t1, bn, t2 = m.nodes
        scale, bias, mean, var = (g.constant(bn.input[k]).astype(np.float64) for k in range(1, 5))
        eps = float(g.attr(bn, "epsilon", 1e-5))
        s = scale / np.sqrt(var + eps)
        b = bias - mean * s
        perm = g.attr(t1, "perm")
        shape = [1] * len(perm)
        shape[perm[1]] = s.size  # BN's channel axis (1 after t1) is axis perm[1] before it
        # trailing size-1 dims are implied by broadcasting; leading ones are not: keep from the channel axis on
        shape = shape[perm[1]:]
        # X's type when known without running shape inference, else the scale's (the same but in mixed precision)
        dtype = g.dtype(t1.input[0], infer=False) or g.dtype(bn.input[1]) or onnx.TensorProto.FLOAT
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        s_name = g.add_initializer(s.reshape(shape).astype(np_dtype), f"{bn.name or 'bn'}_mul")
        b_name = g.add_initializer(b.reshape(shape).astype(np_dtype), f"{bn.name or 'bn'}_add")
        out = t2.output[0]
        g.remove(t1, bn, t2)
        mul = g.add_node("Mul", [t1.input[0], s_name], 1, name=f"{bn.name or 'bn'}_mul")
        g.add_node("Add", [mul.output[0], b_name], [out], name=f"{bn.name or 'bn'}_add")
