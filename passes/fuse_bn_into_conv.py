"""BatchNormalization next to a Conv → folded into the Conv's weights and bias. Exact.

    Conv(x, W, b) → BatchNormalization(γ, β, μ, σ²) → y   ⇒   Conv(x, W·s, (b−μ)·s+β) → y
    BatchNormalization → Conv(pads = 0) → y                ⇒   Conv(x, W·s[c], b + Σ W·t[c]) → y
        where s = γ / √(σ² + ε), t = β − μ·s

torch's exporter folds BN into the Conv before it in eval mode, but not a BN that follows
an Add, a Concat or a Resize, nor one that precedes the Conv (pre-activation blocks), and
other exporters fold nothing: each BN left is a separate NPU kernel and a pass over memory.
Conv and ConvTranspose (any group) fold the BN after them; the BN before a Conv folds only
when the Conv has no padding (a padded border would see the BN of zero, not zero). The
weights are computed in float64 and cast back. The Conv's output (or the BN's) must have no
other reader and must not be a graph output; statistics and weights must be constants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.graph import GraphIndex, iter_nodes
from surgery.matcher import Editor, Match, PatternPass, Rule, run_rules
from surgery.pass_infra import PassResult


class ConvThenBn(Rule):
    """conv:Conv|ConvTranspose → bn:BatchNormalization ⇒ Conv with the BN folded into its weights and bias."""

    label = "Conv→BatchNormalization"

    def check(self, g: Editor, m: Match) -> str | None:
        conv, bn = m.nodes
        x = conv.output[0]
        if g.is_output(x) or len(g.consumers_of(x)) != 1:
            return f"the {conv.op_type} output is also read elsewhere (or is a graph output)"
        why = _bn_problem(g, bn) or _weights_problem(g, conv)
        if why:
            return why
        w = g.constant(conv.input[1])
        group = int(g.attr(conv, "group") or 1)
        channels = w.shape[0] if conv.op_type == "Conv" else w.shape[1] * group  # type: ignore[union-attr]
        if np.size(g.constant(bn.input[1])) != channels:
            return f"the BN has {np.size(g.constant(bn.input[1]))} channels, the {conv.op_type} {channels}"
        return None

    def rewrite(self, g: Editor, m: Match) -> str:
        conv, bn = m.nodes
        s, t = _affine(g, bn)
        w = g.constant(conv.input[1])
        b = g.constant(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        group = int(g.attr(conv, "group") or 1)
        w64 = w.astype(np.float64)  # type: ignore[union-attr]
        if conv.op_type == "Conv":
            w64 = w64 * s.reshape(-1, *([1] * (w64.ndim - 1)))
            out_channels = w64.shape[0]
        else:  # ConvTranspose weight: (C_in, C_out/group, k...); output channel g·(C_out/group) + m
            per = w64.shape[1]
            out_channels = per * group
            w64 = (w64.reshape(group, w64.shape[0] // group, per, *w64.shape[2:])
                   * s.reshape(group, 1, per, *([1] * (w64.ndim - 2)))).reshape(w64.shape)
        b64 = (b.astype(np.float64) if b is not None else np.zeros(out_channels)) * s + t
        _replace_conv(g, conv, [conv.input[0]], w64.astype(w.dtype), b64.astype(w.dtype), bn.output[0],  # type: ignore
                      extra=[bn])
        return f"{conv.op_type}→BatchNormalization"


class BnThenConv(Rule):
    """bn:BatchNormalization → conv:Conv ⇒ Conv with the BN folded into its weights and bias (unpadded Conv)."""

    label = "BatchNormalization→Conv"

    def check(self, g: Editor, m: Match) -> str | None:
        bn, conv = m.nodes
        y = bn.output[0]
        if g.is_output(y) or len(g.consumers_of(y)) != 1 or y in conv.input[1:]:
            return "the BN output is also read elsewhere (or is a graph output)"
        if any(int(p) for p in g.attr(conv, "pads") or []) or \
                (g.attr(conv, "auto_pad") or "NOTSET") not in ("NOTSET", "VALID"):
            return "the Conv pads its input (its border would see BN(0), not 0)"
        why = _bn_problem(g, bn) or _weights_problem(g, conv)
        if why:
            return why
        w = g.constant(conv.input[1])
        channels = w.shape[1] * int(g.attr(conv, "group") or 1)  # type: ignore[union-attr]
        if np.size(g.constant(bn.input[1])) != channels:
            return f"the BN has {np.size(g.constant(bn.input[1]))} channels, the Conv reads {channels}"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        bn, conv = m.nodes
        s, t = _affine(g, bn)
        w = g.constant(conv.input[1])
        b = g.constant(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        group = int(g.attr(conv, "group") or 1)
        w64 = w.astype(np.float64)  # type: ignore[union-attr]
        out_channels, per_group = w64.shape[0], w64.shape[1]
        # the input channel of w[o, c] is (o's group)·(C_in/group) + c
        def per_weight(v: np.ndarray) -> np.ndarray:
            full = v.reshape(group, 1, per_group).repeat(out_channels // group, axis=1)
            return full.reshape(out_channels, per_group, *([1] * (w64.ndim - 2)))

        b64 = (b.astype(np.float64) if b is not None else np.zeros(out_channels)) + \
            (w64 * per_weight(t)).reshape(out_channels, -1).sum(axis=1)
        w64 = w64 * per_weight(s)
        _replace_conv(g, conv, [bn.input[0]], w64.astype(w.dtype), b64.astype(w.dtype), conv.output[0],  # type: ignore
                      extra=[bn])


@dataclass(frozen=True, kw_only=True)
class FuseBnIntoConv(PatternPass):
    """Fold every BatchNormalization next to a Conv (after it, or before it when unpadded) into the Conv; exact."""

    name: ClassVar[str] = "fuse_bn_into_conv"
    exact: ClassVar[bool] = True

    def rules(self) -> Sequence[Rule]:
        return [ConvThenBn(), BnThenConv()]

    def call(self, model: onnx.ModelProto) -> PassResult:
        if not any(n.op_type == "BatchNormalization" for n in iter_nodes(model.graph)):
            return PassResult(model, changed=False, notes=["no BatchNormalization node in the graph"])
        report = run_rules(model, self.rules())
        # keep the site-by-site reasons; the grouped structural misses describe BNs a later rule may have
        # folded, so each BN still left is described once, by its neighbours, instead
        report.notes = [n for n in report.notes if not re.match(r"\d+ × |no |… and ", n)] + _left(model)
        return report.to_pass_result(model)


def _left(model: onnx.ModelProto) -> list[str]:
    index = GraphIndex(model.graph)
    notes = []
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        producer = index.producer.get(node.input[0])
        readers = sorted({index.nodes[i].op_type for i in index.consumers.get(node.output[0], [])})
        before = index.nodes[producer].op_type if producer is not None else "a graph input"
        after = ", ".join(readers) or "the graph output"
        notes.append(f"BatchNormalization {node.name or '(unnamed)'} is left: after {before}, before {after}")
    left_inside = sum(1 for n in iter_nodes(model.graph) if n.op_type == "BatchNormalization") - len(notes)
    if left_inside:
        notes.append(f"{left_inside} BatchNormalization left inside subgraphs")
    return notes


def _bn_problem(g: Editor, bn: onnx.NodeProto) -> str | None:
    if int(g.attr(bn, "training_mode") or 0):
        return "the BN is in training mode"
    if any(g.consumers_of(o) or g.is_output(o) for o in bn.output[1:] if o):
        return "the BN's running statistics outputs are read"
    if len(bn.input) < 5 or any(g.constant(n) is None for n in bn.input[1:5]):
        return "the BN's scale, bias, mean or variance is not a constant"
    return None


def _weights_problem(g: Editor, conv: onnx.NodeProto) -> str | None:
    w = g.constant(conv.input[1]) if len(conv.input) > 1 else None
    if w is None:
        return f"the {conv.op_type} weight is not a constant"
    if not np.issubdtype(w.dtype, np.floating):
        return f"the {conv.op_type} weight is {w.dtype}"
    if len(conv.input) > 2 and conv.input[2] and g.constant(conv.input[2]) is None:
        return f"the {conv.op_type} bias is not a constant"
    return None


def _affine(g: Editor, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) in float64 with BN(x) = x·s + t per channel."""
    scale, bias, mean, var = (np.asarray(g.constant(n), np.float64).ravel() for n in bn.input[1:5])
    s = scale / np.sqrt(var + float(g.attr(bn, "epsilon") or 1e-5))
    return s, bias - mean * s


def _replace_conv(g: Editor, conv: onnx.NodeProto, data: list[str], w: np.ndarray, b: np.ndarray, out: str,
                  extra: list[onnx.NodeProto]) -> None:
    """A Conv like ``conv`` reading ``data`` and new weight and bias, writing ``out``; ``conv`` and ``extra`` go."""
    attrs = {a.name: g.attr(conv, a.name) for a in conv.attribute}
    w_name = g.add_initializer(w, f"{conv.input[1]}_bn")
    b_name = g.add_initializer(b, f"{conv.input[2] if len(conv.input) > 2 and conv.input[2] else conv.input[1]}"
                                  "_bias_bn")
    g.remove(conv, *extra)
    g.add_node(conv.op_type, [*data, w_name, b_name], [out], name=conv.name or conv.op_type, **attrs)


__all__ = ["FuseBnIntoConv"]
