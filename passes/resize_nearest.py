"""Resize(mode=linear|cubic) → Resize(mode=nearest). Inexact: outputs change on purpose.

Conditions: the node is a Resize (or a legacy Upsample) whose mode is not already
nearest, and it is selected by ``nodes`` or ``regex`` (default: every such node), in the
main graph or any If/Loop/Scan body.

Which nearest? Two presets make the choice explicit:
- ``torch``: coordinate_transformation_mode=asymmetric, nearest_mode=floor — what torch's
  exporter writes for ``nn.Upsample(mode='nearest')`` at opset 11, so the result equals
  re-exporting the patched model (the UNet++ guide's route).
- ``keep``: keep each node's coordinate mode and use nearest_mode=round_prefer_floor
  (what Ascend auto-optimizer's KnowledgeResizeModeToNearest did).
``coordinate_transformation_mode`` and ``nearest_mode`` override either preset.

Attributes that mean nothing for nearest go: ``cubic_coeff_a``, ``exclude_outside`` and
opset 18's ``antialias`` (onnxruntime refuses a nearest Resize that keeps them). Opset 10's
Resize has no coordinate or nearest modes: only its mode changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import onnx

from surgery.errors import UsageError
from surgery.matcher import Editor, Match, PatternPass, Rule, run_rules
from surgery.pass_infra import Pass, PassResult, option

COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                    "tf_crop_and_resize", "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
PRESETS = {
    "torch": {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    "keep": {"coordinate_transformation_mode": None, "nearest_mode": "round_prefer_floor"},
}


@dataclass(frozen=True, kw_only=True)
class ResizeNearest(PatternPass):
    """Resize with mode linear or cubic → nearest (inexact; presets torch|keep for the coordinate mode)."""

    name: ClassVar[str] = "resize_nearest"
    exact: ClassVar[bool] = False

    preset: Literal["torch", "keep"] = option("torch", help="torch: asymmetric+floor as torch exports "
                                              "nn.Upsample(mode='nearest'); keep: keep each coordinate mode, "
                                              "round_prefer_floor (auto-optimizer)")
    coordinate_transformation_mode: str | None = option(None, help="override the preset's coordinate mode",
                                                        choices=COORDINATE_MODES)
    nearest_mode: str | None = option(None, help="override the preset's nearest_mode", choices=NEAREST_MODES)
    nodes: tuple[str, ...] | None = option(None, help="node names to rewrite (default: all)")
    regex: str | None = option(None, help="rewrite nodes whose name matches this regular expression")

    def validate(self) -> None:
        if self.nodes is not None and not self.nodes:
            raise UsageError(f"pass resize_nearest: {EMPTY_NODES}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise UsageError(f"pass resize_nearest: bad regex {self.regex!r}: {exc}") from None

    @classmethod
    def from_strings(cls, pairs: dict[str, str]) -> Pass:
        # "nodes=" parses to None (the default: every node), which would silently widen the selection
        for key, text in pairs.items():
            if key.replace("-", "_") == "nodes" and not [p for p in text.split(",") if p.strip()]:
                raise UsageError(f"pass resize_nearest: {EMPTY_NODES}")
        return super().from_strings(pairs)

    def settings(self) -> dict[str, str | None]:
        chosen = dict(PRESETS[self.preset])
        if self.coordinate_transformation_mode:
            chosen["coordinate_transformation_mode"] = self.coordinate_transformation_mode
        if self.nearest_mode:
            chosen["nearest_mode"] = self.nearest_mode
        return chosen

    def call(self, model: onnx.ModelProto) -> PassResult:
        rule = _ToNearest(self)
        report = run_rules(model, [rule])
        notes = list(report.notes)
        for name in sorted(set(self.nodes or ()) - rule.seen):
            notes.append(f"node {name!r} given in nodes= is not a Resize in this graph")
        return PassResult(model, changed=report.changed, counts=report.counts, notes=notes)


EMPTY_NODES = "nodes= is empty: name the nodes to rewrite, or leave the option out to rewrite every Resize"


class _ToNearest(Rule):
    """Resize|Upsample ⇒ Resize(mode=nearest)."""

    def __init__(self, options: ResizeNearest):
        self.options = options
        self.settings = options.settings()
        self.pattern_re = re.compile(options.regex) if options.regex is not None else None
        self.wanted = set(options.nodes or ())
        self.seen: set[str] = set()

    def check(self, g: Editor, m: Match) -> str | None:
        node = m.anchor
        self.seen.add(node.name)
        if self.wanted and node.name not in self.wanted:
            return "not among nodes="
        if self.pattern_re is not None and not self.pattern_re.search(node.name):
            return f"name does not match regex {self.options.regex!r}"
        if _mode(g, node) == "nearest":
            return "mode is already nearest"
        return None

    def rewrite(self, g: Editor, m: Match) -> str:
        node = m.anchor
        mode = _mode(g, node)
        g.set_attr(node, "mode", "nearest")
        if node.op_type == "Resize":
            for attr in DROPPED:
                g.drop_attr(node, attr)
            if g.opset >= 11:
                coord = self.settings["coordinate_transformation_mode"]
                if coord is not None:
                    g.set_attr(node, "coordinate_transformation_mode", coord)
                g.set_attr(node, "nearest_mode", self.settings["nearest_mode"] or "round_prefer_floor")
        return f"{node.op_type}({mode})"


DROPPED = ("cubic_coeff_a", "exclude_outside", "antialias")


def _mode(g: Editor, node: onnx.NodeProto) -> str:
    return str(g.attr(node, "mode", "nearest"))
