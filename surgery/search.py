"""Keep-or-revert search over exact passes and target settings.

    baseline ─► for each candidate: apply (passes: verified) ─► measure incumbent vs candidate
                 ─► keep if the speed-up's CI lies wholly above 1, else revert

Greedy and sequential: passes first (they change the model), then target settings on
the kept model. Every comparison measures the incumbent *again*, beside the candidate
(the measure function interleaves them), so a slow spell on a shared host cannot make a
candidate look faster than a baseline measured minutes earlier. The log says what was
tried, what was kept and why.

Target-independent: target settings are an opaque frozen dataclass changed with
``dataclasses.replace``; the target adapter supplies the candidate changes and the
measure function (for onnxruntime: ``tools.onnxruntime.session_candidates`` and
``surgery.bench.sweep`` over ``run_jobs``). The pass registry is handed in by the caller.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from surgery.apply import apply
from surgery.bench import BenchModel
from surgery.errors import PassError, SurgeryError, ToolError, UnknownNameError, UsageError, VerificationError
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL
from surgery.pass_infra import Pass
from surgery.pipeline import StepReport
from surgery.records import PerfRecord
from surgery.shapes import Shape
from surgery.stats import DEFAULT_CONFIDENCE, FASTER, RatioCI, speedup_ci

# variants, batch sizes -> one list of records per variant (one record per batch)
MeasureFn = Callable[[Sequence[BenchModel], Sequence[int]], list[list[PerfRecord]]]

KEPT, REVERTED, SKIPPED, FAILED = "kept", "reverted", "skipped", "failed"


@dataclass(frozen=True)
class Candidate:
    """Something to try: an exact pass, or a change of target settings."""

    kind: str  # "pass" | "setting"
    name: str
    pass_: Pass | None = None
    change: dict[str, Any] | None = None

    @classmethod
    def for_pass(cls, p: Pass) -> Candidate:
        return cls(kind="pass", name=f"pass {p.name}", pass_=p)

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
    """Exact passes to try: the named ones, or every exact pass of ``registry`` that needs no options.

    Raises:
        UnknownNameError: a name ``registry`` does not have.
        UsageError: a named pass that is inexact (tune only keeps changes that preserve outputs).
    """
    out = []
    for name in names if names is not None else list(registry):
        if name not in registry:
            raise UnknownNameError("pass", name, registry)
        cls = registry[name]
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
    min_effect: float = 0.0,
    samples: int = 3,
    seed: int = 0,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    input_shapes: dict[str, Shape] | None = None,
    digest: str | None = None,
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
        trial.ratio = speedup_ci(inc.latencies_ms, cand.latencies_ms, batch_a=inc.effective_batch or batch,
                                 batch_b=cand.effective_batch or batch, confidence=confidence,
                                 min_effect=min_effect)
        keep = trial.ratio.verdict == FASTER
        trial.decision = KEPT if keep else REVERTED
        trial.reason = f"{trial.ratio.verdict}: {trial.ratio.describe()} at batch {batch}"
        return keep

    for cand in candidates:
        started = time.perf_counter()
        trial = Trial(candidate=cand.name, kind=cand.kind, decision=SKIPPED, reason="")
        if cand.kind == "pass":
            try:
                result = apply(best_model, [cand.pass_], verify=True, samples=samples,
                               seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes)
            except (VerificationError, PassError) as exc:
                trial.decision, trial.reason = FAILED, f"not verified: {exc}"
            else:
                step = result.steps[0]
                trial.counts = dict(step.counts)
                if not result.changed:
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
