"""Passes for the scan tests, in a module the scan's spawned workers can import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.pass_infra import Pass, PassResult


@dataclass(frozen=True, kw_only=True)
class CountRelus(Pass):
    """Count Relu nodes (changes nothing, reports them as would-be sites)."""

    name: ClassVar[str] = "count_relus"

    def call(self, model: onnx.ModelProto) -> PassResult:
        n = sum(1 for node in model.graph.node if node.op_type == "Relu")
        return PassResult(model, changed=bool(n), counts={"Relu": n} if n else {})


@dataclass(frozen=True, kw_only=True)
class Broken(Pass):
    """Raise on every model."""

    name: ClassVar[str] = "broken"

    def call(self, model: onnx.ModelProto) -> PassResult:
        raise ValueError("broken on purpose\nsecond line")


@dataclass(frozen=True, kw_only=True)
class DiesOnDie(Pass):
    """Kill the process on a graph named 'die' (a crash inside native code, as the scan sees it)."""

    name: ClassVar[str] = "dies"

    def call(self, model: onnx.ModelProto) -> PassResult:
        if model.graph.name == "die":
            os._exit(3)
        return PassResult(model, changed=False)


@dataclass(frozen=True, kw_only=True)
class NeedsOption(Pass):
    """A pass with a required option."""

    name: ClassVar[str] = "needs_option"
    what: str

    def call(self, model: onnx.ModelProto) -> PassResult:  # pragma: no cover - never built without its option
        return PassResult(model, changed=False)


REGISTRY = {"count_relus": CountRelus, "broken": Broken, "needs_option": NeedsOption}
