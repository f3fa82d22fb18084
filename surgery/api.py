"""The public API's entry points: the core's functions with the built-in registries handed in.

The core (``surgery.apply``, ``surgery.search``, ``surgery.run``, ...) never imports
``surgery.passes``, ``surgery.models`` or ``surgery.tools``; it receives their registries.
These entry points are where a Python user gets the built-in ones, as the CLI does
(:func:`builtin_targets` is the CLI's target table too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import onnx

from surgery.apply import ApplyResult, PassSpec
from surgery.apply import apply as apply_with

if TYPE_CHECKING:
    from surgery.run import RunResult
    from surgery.targets import Target


def apply(model: onnx.ModelProto | str | os.PathLike, passes: Sequence[PassSpec], **options: Any) -> ApplyResult:
    """:func:`surgery.apply.apply` with the built-in passes, so passes may be given by name.

    ``surgery.apply("m.onnx", ["eliminate_dead_code", ("prune_outputs", {"outputs": "0"})])``;
    every keyword of :func:`surgery.apply.apply` is accepted (``registry=`` replaces the built-in one).
    """
    from surgery.passes import PASSES

    options.setdefault("registry", PASSES)
    return apply_with(model, passes, **options)


def builtin_targets() -> dict[str, Target]:
    """Every built-in target, keyed by name (onnxruntime, ATC/AOE, ais_bench, trtexec)."""
    from surgery.models import ZOO
    from surgery.passes import PASSES
    from surgery.passes.fix_shapes import reshape_batch
    from surgery.tools.ascend.targets import AisBenchTarget, AtcTarget
    from surgery.tools.onnxruntime import OrtTarget
    from surgery.tools.tensorrt.target import TrtexecTarget

    return {
        "ort-cpu": OrtTarget("ort-cpu", zoo=ZOO, registry=PASSES, reshaper=reshape_batch),
        "ort-cuda": OrtTarget("ort-cuda", zoo=ZOO, registry=PASSES, reshaper=reshape_batch),
        "ort-trt": OrtTarget("ort-trt", zoo=ZOO, registry=PASSES, reshaper=reshape_batch),
        "ais-bench": AisBenchTarget(),
        "trtexec": TrtexecTarget(zoo=ZOO, registry=PASSES),
        "atc": AtcTarget(zoo=ZOO, registry=PASSES),
    }


def run_model(model: str | os.PathLike, *, passes: Sequence[PassSpec] | None = None, **fields: Any) -> RunResult:
    """:func:`surgery.run.run` with the built-in passes, zoo and targets: a whole ``surgery run``.

    ``surgery.run_model("unetpp", generate=16, batches=(1, 4))`` (not ``surgery.run``: that is the
    core module); ``passes`` as for :func:`apply`
    (default: the recipe's); every other field of :class:`surgery.run.RunRequest` is a keyword
    (``target="atc", dry_run=True``, ``budget=Budget.parse("agreement=0.99")``, ``runs_root=``...).
    Zoo options (``variants=``, ``checkpoint=``...) go in ``zoo=ZooOptions(...)``.
    """
    from surgery.modelref import ZooOptions
    from surgery.models import ZOO
    from surgery.passes import PASSES
    from surgery.run import RunRequest
    from surgery.run import run as run_with
    from surgery.targets import ModelSpec

    zoo_options = fields.pop("zoo", None) or ZooOptions(guide=True)
    spec = ModelSpec(os.fspath(model), zoo_options)
    request = RunRequest(model=spec, passes=tuple(passes) if passes is not None else None, **fields)
    return run_with(request, zoo=ZOO, registry=PASSES, targets=builtin_targets())
