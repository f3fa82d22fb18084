"""Keep-or-revert search over exact passes and target settings.

    baseline ─► for each candidate: apply (passes: verified) ─► measure incumbent vs candidate
                 ─► keep if the speed-up's CI lies wholly above 1, else revert

Greedy and sequential: passes first (they change the model), then target settings on
the kept model. Every comparison measures the incumbent *again*, beside the candidate
(the measure function interleaves them in rotating rounds until the interval reaches the
precision goal or the time cap), and decides on the *paired* interval
(:func:`surgery.pairing.speedup`), so a slow spell on a shared host cannot make a
candidate look faster than a baseline measured minutes earlier, and a 3 % gain is not lost
in run-to-run drift. The log says what was tried, what was kept and why, and when a
comparison stopped short of its precision goal.

Target-independent: target settings are an opaque frozen dataclass changed with
``dataclasses.replace``; the target adapter supplies the candidate changes and the
measure function (for onnxruntime: ``tools.onnxruntime.session_candidates`` and
``surgery.bench.sweep`` over ``run_jobs``). The pass registry is handed in by the caller.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from surgery.apply import apply
from surgery.bench import BenchModel
from surgery.errors import PassError, SurgeryError, ToolError, UnknownNameError, UsageError, VerificationError
from surgery.pairing import speedup
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL
from surgery.pass_infra import Pass
from surgery.pipeline import StepReport
from surgery.records import PerfRecord
from surgery.shapes import Shape
from surgery.stats import DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT, FASTER, SAME, RatioCI, min_effect_text
from surgery.targets.measure import STOP_MAX_TIME

# variants, batch sizes -> one list of records per variant (one record per batch)
MeasureFn = Callable[[Sequence[BenchModel], Sequence[int]], list[list[PerfRecord]]]

KEPT, REVERTED, SKIPPED, FAILED = "kept", "reverted", "skipped", "failed"


@dataclass(frozen=True)
class Candidate:
    """Something to try: an exact pass, or a change of target settings.

    ``checks`` are instruments run around the pass besides verification, e.g. an accuracy
    budget (:class:`surgery.budget.BudgetCheck`) that fails an inexact pass over budget.
    """

    kind: str  # "pass" | "setting"
    name: str
    pass_: Pass | None = None
    change: dict[str, Any] | None = None
    checks: tuple[Any, ...] = ()

    @classmethod
    def for_pass(cls, p: Pass, checks: tuple[Any, ...] = (), name: str | None = None) -> Candidate:
        return cls(kind="pass", name=name or f"pass {p.name}", pass_=p, checks=tuple(checks))

    @classmethod
    def for_setting(cls, change: dict[str, Any]) -> Candidate:
        return cls(kind="setting", name=", ".join(f"{k}={v}" for k, v in change.items()), change=dict(change))


@dataclass
class Trial:
    """One candidate's outcome: decision (kept, reverted, skipped, failed) and why."""

    candidate: str
    kind: str
    decision: str
    reason: str
    ratio: RatioCI | None = None
    incumbent: PerfRecord | None = None
    measured: PerfRecord | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        def brief(r: PerfRecord | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"batch": r.batch, "effective_batch": r.effective_batch, "throughput": r.throughput,
                    "stats": r.stats, "iterations": r.iterations, "error": r.error, "settings": r.settings}

        return {"candidate": self.candidate, "kind": self.kind, "decision": self.decision, "reason": self.reason,
                "speedup": self.ratio.to_dict() if self.ratio else None, "incumbent": brief(self.incumbent),
                "measured": brief(self.measured), "counts": self.counts, "seconds": round(self.seconds, 3)}


@dataclass
class SearchResult:
    """The best model and settings found, the log, and the before/after records."""

    model: onnx.ModelProto
    options: Any
    trials: list[Trial]
    steps: list[StepReport]  # the kept passes' reports
    before: list[PerfRecord] = field(default_factory=list)
    after: list[PerfRecord] = field(default_factory=list)

    @property
    def kept(self) -> list[Trial]:
        return [t for t in self.trials if t.decision == KEPT]


def pass_candidates(registry: Mapping[str, type[Pass]], names: Sequence[str] | None = None) -> list[Candidate]:
    """Exact passes to try: the named ones, or every exact pass of ``registry`` that needs no options
    and is a default candidate (``Pass.tune_default``).

    Raises:
        UnknownNameError: a name ``registry`` does not have.
        UsageError: a named pass that is inexact (tune only keeps changes that preserve outputs).
    """
    out = []
    for name in names if names is not None else list(registry):
        if name not in registry:
            raise UnknownNameError("pass", name, registry)
        cls = registry[name]
        if names is None and not cls.tune_default:
            continue
        if not cls.exact:
            if names is not None:
                raise UsageError(f"pass {name} is inexact: tune only tries passes that keep the outputs")
            continue
        try:
            instance = cls()
        except (SurgeryError, TypeError):
            if names is not None:
                raise UsageError(f"pass {name} needs options; tune tries passes that run with their defaults") \
                    from None
            continue
        out.append(Candidate.for_pass(instance))
    return out


def search(
    model: onnx.ModelProto,
    *,
    options: Any,
    measure: MeasureFn,
    candidates: Sequence[Candidate],
    batch: int = 1,
    batches: Sequence[int] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    min_effect: float = DEFAULT_MIN_EFFECT,
    samples: int = 3,
    seed: int = 0,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    input_shapes: dict[str, Shape] | None = None,
    digest: str | None = None,
    precision: float | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> SearchResult:
    """Try each candidate on top of the best so far; keep it only when verified and significantly faster.

    Args:
        model: the model to tune (not modified).
        options: the target's settings to start from (a frozen dataclass).
        measure: measures variants at batch sizes (interleaved), see :data:`MeasureFn`.
        candidates: passes and setting changes, tried in order.
        batch: the batch size the search compares at.
        batches: batch sizes of the final before/after table (default: ``[batch]``).
        confidence: level of the speed-up interval.
        min_effect: a speed-up must clear ``1 + min_effect`` with its whole interval.
        samples: seeded random samples for parity of each pass.
        seed: seed of the first sample.
        atol: absolute tolerance of parity.
        rtol: relative tolerance of parity.
        input_shapes: sizes for dynamic inputs (verification and benchmarks).
        digest: the input model's digest, for the records.
        precision: the half-width goal the measure function works to (for the log: a
            comparison that stopped short says so).
        on_trial: called with each trial as soon as it is decided.
        on_phase: called with "search" and "final" when those phases start.

    Raises:
        ToolError: the starting model cannot run on the target at ``batch``.
    """
    original = onnx.ModelProto()
    original.CopyFrom(model)
    best_model, best_options = original, options
    trials: list[Trial] = []
    steps: list[StepReport] = []
    if on_phase:
        on_phase("search")

    def compare(cand_model: onnx.ModelProto, cand_options: Any) -> tuple[PerfRecord, PerfRecord]:
        inc, cand = measure([BenchModel(best_model, best_options, "incumbent", digest),
                             BenchModel(cand_model, cand_options, "candidate")], [batch])
        if not inc[0].ok:
            raise ToolError(f"the {'starting' if not trials else 'best'} model cannot run at batch {batch}: "
                            f"{inc[0].error}")
        return inc[0], cand[0]

    def decide(trial: Trial, inc: PerfRecord, cand: PerfRecord) -> bool:
        trial.incumbent, trial.measured = inc, cand
        if not cand.ok:
            trial.decision, trial.reason = FAILED, f"failed at batch {batch}: {cand.error}"
            return False
        ratio = speedup(inc, cand, confidence=confidence, min_effect=min_effect)
        if ratio is None:
            trial.decision, trial.reason = FAILED, f"no latency samples at batch {batch}"
            return False
        trial.ratio = ratio
        keep = ratio.verdict == FASTER
        trial.decision = KEPT if keep else REVERTED
        note = _precision_note(ratio, cand, precision, min_effect)
        trial.reason = f"{ratio.verdict}: {ratio.describe()} at batch {batch}{note}"
        return keep

    for cand in candidates:
        started = time.perf_counter()
        trial = Trial(candidate=cand.name, kind=cand.kind, decision=SKIPPED, reason="")
        if cand.kind == "pass":
            try:
                result = apply(best_model, [cand.pass_], verify=True, samples=samples,
                               seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes,
                               extra_instruments=cand.checks)
            except (VerificationError, PassError) as exc:
                trial.decision, trial.reason = FAILED, f"not verified: {exc}"
            else:
                step = result.steps[0]
                trial.counts = dict(step.counts)
                if not step.verification.ok:  # compared nowhere: not a candidate to keep (issue 9)
                    trial.decision, trial.reason = FAILED, f"not verified: {step.verification.why()}"
                elif not result.changed:
                    trial.reason = "nothing to change" + (f" ({step.notes[0]})" if step.notes else "")
                else:
                    inc, measured = compare(result.model, best_options)
                    if decide(trial, inc, measured):
                        best_model = result.model
                        steps.append(step)
        else:
            try:
                new_options = dataclasses.replace(best_options, **(cand.change or {}))
            except (SurgeryError, TypeError) as exc:
                trial.decision, trial.reason = FAILED, f"invalid setting: {exc}"
            else:
                if new_options == best_options:
                    trial.reason = "already the current setting"
                else:
                    inc, measured = compare(best_model, new_options)
                    if decide(trial, inc, measured):
                        best_options = new_options
        trial.seconds = time.perf_counter() - started
        trials.append(trial)
        if on_trial:
            on_trial(trial)

    if on_phase:
        on_phase("final")
    before, after = measure([BenchModel(original, options, "before", digest),
                             BenchModel(best_model, best_options, "after")], list(batches or [batch]))
    return SearchResult(model=best_model, options=best_options, trials=trials, steps=steps, before=before, after=after)


def _precision_note(ratio: RatioCI, record: PerfRecord, precision: float | None, min_effect: float) -> str:
    """Why a verdict is what it is: under the minimum effect, within noise at the goal, or the goal not reached."""
    notes = []
    if ratio.below_min_effect:
        notes.append(min_effect_text(min_effect))
    if precision is not None and record.stop == STOP_MAX_TIME and ratio.half_width > precision:
        reached = f"±{ratio.half_width * 100:.1f}%" if math.isfinite(ratio.half_width) else "too few rounds"
        notes.append(f"stopped at the time cap: {reached}, short of the ±{precision * 100:g}% goal")
    elif ratio.verdict == SAME and not notes:
        notes.append(f"within noise: ±{ratio.half_width * 100:.1f}%")
    return f" ({'; '.join(notes)})" if notes else ""
