"""Run passes in order, with instruments around each pass (TVM style).

Instruments verify, time and snapshot; passes only rewrite. An instrument may raise
VerificationError from ``after_pass`` to fail the run. Any error raised inside a pass
is re-raised as a PassError naming the pass and the passes before it. Each step carries
a :class:`~surgery.verification.Verification` that the instruments fill in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from surgery.errors import VerificationError
from surgery.pass_infra import Pass, PassResult, wrap_error
from surgery.verification import Verification


@dataclass
class StepReport:
    """One pass's line in the run: what it did, how long it took, what the instruments found."""

    index: int
    name: str
    exact: bool
    options: dict[str, Any]
    changed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # shown whatever the verbosity (the pass's own hazards)
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)  # instrument name -> figures
    status: str = "ok"  # ok | failed | skipped
    verification: Verification = field(default_factory=Verification)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "verification"}
        data["verification"] = self.verification.to_dict()
        return data


@dataclass
class PipelineResult:
    model: onnx.ModelProto
    steps: list[StepReport]
    figures: dict[str, Any] = field(default_factory=dict)  # whole-run figures from instruments

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


class Instrument:
    """Hooks around a pipeline. Override what you need; each hook may read or annotate the step."""

    name = "instrument"

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None: ...

    def before_pass(self, p: Pass, model: onnx.ModelProto, step: StepReport) -> None: ...

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None: ...

    def after_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None: ...


class Pipeline:
    """A sequence of passes run once each, in order, over one model (edited in place)."""

    def __init__(self, passes: Sequence[Pass], instruments: Sequence[Instrument] = ()):
        self.passes = list(passes)
        self.instruments = list(instruments)

    def run(self, model: onnx.ModelProto, on_step: Callable[[StepReport], None] | None = None) -> PipelineResult:
        """Run every pass over ``model``, which is edited in place."""
        figures: dict[str, Any] = {}
        steps: list[StepReport] = []
        instruments = self.instruments
        for inst in instruments:
            inst.before_pipeline(model, figures)
        done: list[str] = []
        for k, p in enumerate(self.passes):
            step = StepReport(index=k, name=p.name, exact=p.exact, options=p.option_values())
            steps.append(step)
            for inst in instruments:
                inst.before_pass(p, model, step)
            start = time.perf_counter()
            try:
                result = p(model)
            except Exception as exc:  # wrap_error keeps a SurgeryError's class, wraps anything else in PassError
                step.status = "failed"
                raise wrap_error(exc, p.name, done) from exc
            step.seconds = time.perf_counter() - start
            step.changed, step.counts, step.notes = result.changed, dict(result.counts), list(result.notes)
            step.warnings = list(result.warnings)
            if result.model is not model:
                model.CopyFrom(result.model)
                result.model = model
            try:
                for inst in instruments:
                    inst.after_pass(p, result, step)
            except VerificationError as exc:
                step.status = "failed"
                if step.verification.failure is None:
                    step.verification.fail(str(exc))
                if on_step is not None:
                    on_step(step)  # the failed step is shown too, with what its instruments found
                raise
            if on_step is not None:
                on_step(step)
            done.append(p.name)
        for inst in instruments:
            inst.after_pipeline(model, figures)
        return PipelineResult(model=model, steps=steps, figures=figures)
