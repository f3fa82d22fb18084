"""onnxsim as a pass: constant folding, shape-chain folding and onnxoptimizer fusions.

    Shape → Gather → Unsqueeze → Concat → Reshape   ⇒   Reshape(constant shape)

Exact. onnxsim's own ``check_n`` is left at 0: our NumericParity instrument verifies.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.errors import PassError, UsageError, first_line
from surgery.pass_infra import Pass, PassResult, option
from surgery.shapes import parse_shapes


@dataclass(frozen=True, kw_only=True)
class Simplify(Pass):
    """onnxsim as a pass: fold constants and shape chains, fuse what onnxoptimizer fuses."""

    name: ClassVar[str] = "simplify"
    exact: ClassVar[bool] = True

    skip_fuse_bn: bool = option(False, help="do not fuse BatchNormalization into Conv")
    skip_constant_folding: bool = option(False, help="do not fold constants")
    skip_shape_inference: bool = option(False, help="do not run shape inference")
    skipped_optimizers: tuple[str, ...] = option((), help="onnxoptimizer passes to skip, e.g. eliminate_nop_pad")
    input_shapes: str | None = option(None, help="fix input shapes first, trtexec syntax name:1x3x224x224")
    include_subgraph: bool = option(False, help="simplify If/Loop bodies too")
    tensor_size_threshold: str = option("1.5GB", help="do not fold constants larger than this")

    def validate(self) -> None:
        size = _size_bytes(self.tensor_size_threshold)
        if size is None:
            raise UsageError(f"pass simplify: tensor_size_threshold expects a size such as 500MB or 1.5GB, "
                             f"got {self.tensor_size_threshold!r}")
        if size >= _ONNXSIM_MAX_THRESHOLD:
            raise UsageError(f"pass simplify: tensor_size_threshold must be under 2GB (onnxsim's limit), "
                             f"got {self.tensor_size_threshold!r}")
        if self.input_shapes:
            for name, dims in parse_shapes(self.input_shapes).items():
                if any(isinstance(d, str) for d in dims):
                    raise UsageError(f"pass simplify: input_shapes for {name!r} must be numbers")

    def call(self, model: onnx.ModelProto) -> PassResult:
        try:
            import onnxsim
        except ImportError:  # pragma: no cover - onnxsim is a dependency
            raise PassError("onnxsim is not installed: pip install onnxsim") from None
        before = Counter(n.op_type for n in model.graph.node)
        shapes = {k: list(v) for k, v in parse_shapes(self.input_shapes).items()} if self.input_shapes else None
        try:
            simplified, _ = onnxsim.simplify(
                model,
                check_n=0,
                skip_fuse_bn=self.skip_fuse_bn,
                skip_constant_folding=self.skip_constant_folding,
                skip_shape_inference=self.skip_shape_inference,
                skipped_optimizers=list(self.skipped_optimizers) or None,
                overwrite_input_shapes=shapes,
                include_subgraph=self.include_subgraph,
                tensor_size_threshold=self.tensor_size_threshold,
            )
        except Exception as exc:  # onnxsim raises RuntimeError/ValueError/etc. from C++
            raise PassError(f"onnxsim failed: {first_line(exc)}") from exc
        after = Counter(n.op_type for n in simplified.graph.node)
        counts = {f"{op}": before[op] - after.get(op, 0) for op in before if before[op] > after.get(op, 0)}
        added = {op: after[op] - before.get(op, 0) for op in after if after[op] > before.get(op, 0)}
        notes = [f"added {n} {op}" for op, n in added.items()]
        removed = sum(before.values()) - sum(after.values())
        changed = removed != 0 or bool(added) or _structure(simplified) != _structure(model)
        if not changed:
            notes.append("onnxsim found nothing to fold or fuse")
        if changed:
            model.CopyFrom(simplified)
        result_counts = {"nodes_removed": removed, **{f"{op}_removed": n for op, n in counts.items()}}
        if not changed:
            result_counts = {}
        return PassResult(model, changed=changed, counts={k: v for k, v in result_counts.items() if v}, notes=notes)


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?B)", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_ONNXSIM_MAX_THRESHOLD = 2**31 - 9999  # onnxsim refuses thresholds from here on, after its slow phases


def _size_bytes(text: str) -> int | None:
    """``1.5GB`` → bytes, as onnxsim reads it (its own parser raises a bare ValueError); None when unreadable."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _structure(model: onnx.ModelProto) -> tuple:
    """Nodes and initializers as bytes: what matters for "did onnxsim change anything" (not value_info)."""
    g = model.graph
    # onnxsim names unnamed nodes; a name alone is no change
    nodes = tuple((n.op_type, n.domain, tuple(n.input), tuple(n.output),
                   tuple(a.SerializeToString() for a in n.attribute)) for n in g.node)
    # one tensor's bytes at a time: the weights may be gigabytes
    inits = tuple(sorted(hashlib.sha256(t.SerializeToString()).digest() for t in g.initializer))
    return nodes, inits, tuple(o.name for o in g.output)
