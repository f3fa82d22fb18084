"""Resize(mode=linear|cubic) → Resize(mode=nearest). Inexact: outputs change on purpose.

Conditions: the node is a Resize (or a legacy Upsample) whose mode is not already
nearest, and it is selected by ``nodes`` or ``regex`` (default: every such node).

Which nearest? Two presets make the choice explicit:
- ``torch``: coordinate_transformation_mode=asymmetric, nearest_mode=floor — what torch's
  exporter writes for ``nn.Upsample(mode='nearest')`` at opset 11, so the result equals
  re-exporting the patched model (the UNet++ guide's route).
- ``keep``: keep each node's coordinate mode and use nearest_mode=round_prefer_floor
  (what Ascend auto-optimizer's KnowledgeResizeModeToNearest did).
``coordinate_transformation_mode`` and ``nearest_mode`` override either preset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import onnx

from surgery.errors import UsageError
from surgery.pass_infra import Pass, PassResult, option

COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                    "tf_crop_and_resize", "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
PRESETS = {
    "torch": {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    "keep": {"coordinate_transformation_mode": None, "nearest_mode": "round_prefer_floor"},
}


@dataclass(frozen=True, kw_only=True)
class ResizeNearest(Pass):
    """Resize with mode linear or cubic → nearest (inexact; presets torch|keep for the coordinate mode)."""

    name: ClassVar[str] = "resize_nearest"
    exact: ClassVar[bool] = False

    preset: Literal["torch", "keep"] = option("torch", help="torch: asymmetric+floor as torch exports "
                                              "nn.Upsample(mode='nearest'); keep: keep each coordinate mode, "
                                              "round_prefer_floor (auto-optimizer)")
    coordinate_transformation_mode: str | None = option(None, help="override the preset's coordinate mode",
                                                        choices=COORDINATE_MODES)
    nearest_mode: str | None = option(None, help="override the preset's nearest_mode", choices=NEAREST_MODES)
    nodes: tuple[str, ...] = option((), help="node names to rewrite (default: all)")
    regex: str | None = option(None, help="rewrite nodes whose name matches this regular expression")

    def validate(self) -> None:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise UsageError(f"pass resize_nearest: bad regex {self.regex!r}: {exc}") from None

    def settings(self) -> dict[str, str | None]:
        chosen = dict(PRESETS[self.preset])
        if self.coordinate_transformation_mode:
            chosen["coordinate_transformation_mode"] = self.coordinate_transformation_mode
        if self.nearest_mode:
            chosen["nearest_mode"] = self.nearest_mode
        return chosen

    def call(self, model: onnx.ModelProto) -> PassResult:
        settings = self.settings()
        pattern = re.compile(self.regex) if self.regex is not None else None
        wanted = set(self.nodes)
        counts: dict[str, int] = {}
        notes: list[str] = []
        seen_names: set[str] = set()
        for node in model.graph.node:
            if node.op_type not in ("Resize", "Upsample") or node.domain not in ("", "ai.onnx"):
                continue
            seen_names.add(node.name)
            label = f"{node.op_type} {node.name or '(unnamed)'}"
            if wanted and node.name not in wanted:
                notes.append(f"{label}: not among nodes=")
                continue
            if pattern is not None and not pattern.search(node.name):
                notes.append(f"{label}: name does not match regex {self.regex!r}")
                continue
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
            if mode == "nearest":
                notes.append(f"{label}: mode is already nearest")
                continue
            _set_str(node, "mode", "nearest")
            if node.op_type == "Resize":
                coord = settings["coordinate_transformation_mode"]
                if coord is not None:
                    _set_str(node, "coordinate_transformation_mode", coord)
                _set_str(node, "nearest_mode", settings["nearest_mode"] or "round_prefer_floor")
                _drop(node, "cubic_coeff_a")
            counts[f"{node.op_type}({mode})"] = counts.get(f"{node.op_type}({mode})", 0) + 1
        for name in sorted(wanted - seen_names):
            notes.append(f"node {name!r} given in nodes= is not a Resize in this graph")
        if not seen_names:
            notes.append("no Resize or Upsample node in the graph")
        return PassResult(model, changed=bool(counts), counts=counts, notes=notes)


def _set_str(node: onnx.NodeProto, name: str, value: str) -> None:
    for attr in node.attribute:
        if attr.name == name:
            attr.s = value.encode()
            return
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _drop(node: onnx.NodeProto, name: str) -> None:
    for k, attr in enumerate(node.attribute):
        if attr.name == name:
            del node.attribute[k]
            return
