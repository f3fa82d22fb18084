"""``surgery.apply``: import once, run passes with verification, hand back the result.

The CLI's ``surgery apply`` is this function plus loading, saving, tables and a record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from surgery.errors import UnknownNameError, UsageError
from surgery.graph import ModelSummary, load_model, summarize
from surgery.instruments import CheckModel, InferShapes, NumericParity, Snapshot
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL, load_feeds
from surgery.pass_infra import Pass
from surgery.pipeline import Instrument, Pipeline, StepReport
from surgery.shapes import Shape, model_inputs

PassSpec = Pass | str | tuple[str, dict[str, Any]]


@dataclass
class ApplyResult:
    model: onnx.ModelProto
    steps: list[StepReport]
    before: ModelSummary
    after: ModelSummary
    figures: dict[str, Any] = field(default_factory=dict)
    verified: bool = True

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


def build_passes(specs: Sequence[PassSpec], registry: Mapping[str, type[Pass]] | None = None) -> list[Pass]:
    """Pass instances from instances, or names and (name, options) pairs looked up in ``registry``.

    Raises:
        UsageError: a name given with no registry to look it up in.
        UnknownNameError: a name the registry does not have (with a did-you-mean).
    """
    out: list[Pass] = []
    for spec in specs:
        if isinstance(spec, Pass):
            out.append(spec)
            continue
        name, options = (spec, {}) if isinstance(spec, str) else spec
        if registry is None:
            raise UsageError(f"pass {name!r} given by name but no pass registry was handed in: pass a Pass "
                             "instance, or call surgery.apply (which uses surgery.passes.PASSES)")
        if name not in registry:
            raise UnknownNameError("pass", name, registry)
        cls = registry[name]
        if all(isinstance(v, str) for v in options.values()):
            out.append(cls.from_strings(options))
        else:
            out.append(cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}))
    return out


def verification_instruments(*, samples: int = 3, seed: int = 0, atol: float = DEFAULT_ATOL,
                             rtol: float = DEFAULT_RTOL, input_shapes: dict[str, Shape] | None = None,
                             real_feeds: list[dict[str, np.ndarray]] | None = None) -> list[Instrument]:
    return [CheckModel(), InferShapes(),
            NumericParity(samples=samples, seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes,
                          real_feeds=real_feeds)]


def apply(
    model: onnx.ModelProto | str | os.PathLike,
    passes: Sequence[PassSpec],
    *,
    registry: Mapping[str, type[Pass]] | None = None,
    verify: bool = True,
    samples: int = 3,
    seed: int = 0,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    input_shapes: dict[str, Shape] | None = None,
    inputs: str | os.PathLike | None = None,
    snapshot: str | os.PathLike | None = None,
    dry_run: bool = False,
    copy: bool = True,
    on_step: Callable[[StepReport], None] | None = None,
) -> ApplyResult:
    """Run passes over a model, verifying after each.

    Args:
        model: a ModelProto or a path. A ModelProto is copied first unless ``copy=False``.
        passes: Pass instances, pass names, or (name, options) pairs, run in order.
        registry: name → pass class, for passes given by name (``surgery.passes.PASSES``).
        verify: run the onnx checker, shape inference and onnxruntime parity after each pass.
        samples: seeded random samples for parity (plus any from ``inputs``).
        seed: seed of the first random sample.
        atol: absolute tolerance (Polygraphy semantics: an element fails when both errors exceed).
        rtol: relative tolerance.
        input_shapes: sizes for dynamic input dimensions, e.g. ``{"x": (1, 3, 96, 96)}``.
        inputs: an .npz of real samples, one array per input name.
        snapshot: a folder to save the model after each pass.
        dry_run: report what each pass would match; the model is left as it was.
        copy: copy a given ModelProto before editing (the CLI passes False: it owns its copy).
            A dry run always works on a copy.
        on_step: called with each pass's report as soon as it is done.

    Raises:
        PassError: a pass failed (names it and the passes before it).
        VerificationError: an exact pass changed the outputs, or a pass produced an invalid model.
    """
    if isinstance(model, onnx.ModelProto):
        if copy or dry_run:
            original = model
            model = onnx.ModelProto()
            model.CopyFrom(original)
    else:
        model = load_model(model)
    pass_list = build_passes(passes, registry)
    before = summarize(model)
    instruments: list[Instrument] = []
    if verify and not dry_run:
        real = load_feeds(inputs, model_inputs(model)) if inputs else None
        instruments = verification_instruments(samples=samples, seed=seed, atol=atol, rtol=rtol,
                                               input_shapes=input_shapes, real_feeds=real)
    if snapshot and not dry_run:
        instruments.append(Snapshot(snapshot))
    result = Pipeline(pass_list, instruments).run(model, on_step=on_step)
    return ApplyResult(model=result.model, steps=result.steps, before=before, after=summarize(result.model),
                       figures=result.figures, verified=bool(verify and not dry_run))
