"""``surgery run``: a porting guide's whole loop for one model, before and after, in one run folder.

    export ─► passes, one at a time, each verified (inexact ones judged by fidelity or the budget)
          │       kept, or reverted with the reason: not verified, over budget, significantly slower
          ▼
    whole-run check (parity of exact pipelines, or the budget) ─ fails ─► bisection: the shortest failing
          │                                                             prefix names the pass; it is reverted
          ▼
    before and after benchmarked together (paired) at every batch ─► evaluation before and after
          ▼
    run.json (the run record) + report.html

Every step is a :class:`~surgery.runfolder.RunFolder` step keyed by what decides its result
(the input model's digest, the pass and its options, the settings), so a rerun reuses what
is unchanged and an interrupted run resumes. The core gets the zoo, the pass registry and
the targets from its caller; nothing here imports ``surgery.passes``, ``models`` or ``tools``.

Vendor targets (``atc``): the passes run and are verified here on onnxruntime; compiling and
timing before and after is a plan for the NPU host. With ``dry_run`` (or no CANN) the plan is
written as ``plan.sh`` in the run folder; ``surgery import … --run DIR`` of its results
completes the report. With CANN, the plan runs here.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from surgery import __version__
from surgery.apply import PassSpec, apply, build_passes
from surgery.bisection import shortest_failing_prefix
from surgery.budget import Budget, BudgetCheck, judge
from surgery.budget_eval import evaluator_for
from surgery.errors import PassError, UsageError, VerificationError
from surgery.graph import load_model_file, save_model, summarize
from surgery.modelref import Zoo, resolve_model
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL, Session, compare_arrays, random_samples
from surgery.pass_infra import Pass
from surgery.records import PerfRecord, RunRecord
from surgery.runfolder import RunFolder, StepOutputs, step_key
from surgery.shapes import Shape, format_shapes, model_inputs, shapes_at
from surgery.targets.base import BENCH, COMPILE, EVAL, TUNE, Events, Request, Target
from surgery.targets.model import ModelSpec
from surgery.targets.plan import Plan

KEPT, REVERTED, FAILED, NO_CHANGE = "kept", "reverted", "failed", "no change"
GATE_PRECISION = 0.03  # the per-pass "significantly slower" check: ±3 % is enough to see a real slowdown
GATE_MAX_TIME = 8.0


@dataclass(frozen=True)
class VerifySettings:
    """How each pass is verified (as ``surgery apply``)."""

    samples: int = 3
    seed: int = 0
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL


@dataclass(frozen=True)
class RunRequest:
    """Everything one ``surgery run`` does (see :func:`run`).

    Attributes:
        model: the MODEL and its zoo options.
        target: where before and after are measured (``ort-cpu``, ``atc``, ...).
        passes: the passes to run; None: the recipe's (the guide's), none for a plain file.
        batches: batch sizes of the perf table; None: the recipe's, else 1.
        input_shapes: ``--input-shapes``.
        data: a dataset folder in the recipe's layout (accuracy before and after, and agreement).
        generate: or this many generated images (agreement only: not accuracy).
        limit: at most this many dataset images.
        mode: ``guide`` or ``upstream`` preprocessing and metric.
        budget: how far inexact passes may move the task (per pass and for the whole run).
        fallback: over budget, return the most costly layers (quantize_int8).
        strict: fail instead of reverting; an unverified pass fails.
        verify: verification settings of every pass.
        precision: the perf table's precision goal; max_time: its cap per batch.
        threads: onnxruntime intra-op threads.
        perf_gate: revert a pass that makes the target significantly slower (onnxruntime targets).
        dry_run: vendor targets: write the NPU/GPU host's plan instead of running it.
        aoe: vendor targets: tune the after model with AOE.
        soc: the ATC chip.
        runs_root: where run folders go; run_dir: this run's folder (default: a new one, or the
            unfinished run with the same request).
        timeout: seconds per vendor command.
    """

    model: ModelSpec
    target: str = "ort-cpu"
    passes: tuple[PassSpec, ...] | None = None
    batches: tuple[int, ...] | None = None
    input_shapes: Mapping[str, Shape] = field(default_factory=dict)
    data: str | None = None
    generate: int | None = None
    limit: int | None = None
    mode: str = "guide"
    budget: Budget | None = None
    fallback: bool = False
    strict: bool = False
    verify: VerifySettings = field(default_factory=VerifySettings)
    precision: float | None = None
    max_time: float | None = None
    threads: int | None = None
    perf_gate: bool = True
    dry_run: bool = False
    aoe: bool = False
    soc: str | None = None
    runs_root: str = "runs"
    run_dir: str | None = None
    timeout: float | None = None

    def key_options(self) -> dict[str, Any]:
        """What decides the run's results (not where it is written): the run folder's key."""
        return {"model": self.model.arg, "zoo": dataclasses.asdict(self.model.zoo_options), "target": self.target,
                "passes": [_spec_text(p) for p in self.passes] if self.passes is not None else None,
                "batches": self.batches, "shapes": format_shapes(self.input_shapes), "data": self.data,
                "generate": self.generate, "limit": self.limit, "mode": self.mode,
                "budget": str(self.budget) if self.budget else None, "fallback": self.fallback,
                "strict": self.strict, "verify": dataclasses.asdict(self.verify), "precision": self.precision,
                "max_time": self.max_time, "threads": self.threads, "perf_gate": self.perf_gate, "aoe": self.aoe,
                "soc": self.soc, "dry_run": self.dry_run}


@dataclass
class PassOutcome:
    """One pass of the run: what it did and whether it was kept (the manifest keeps it as a dict)."""

    index: int
    name: str
    exact: bool
    options: dict[str, Any]
    decision: str
    why: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    verification: dict[str, Any] = field(default_factory=dict)  # status, reasons
    parity: str = ""
    fidelity: str = ""
    budget: str = ""
    speed: dict[str, Any] | None = None
    model_file: str | None = None  # the model after the pass, when kept
    digest: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PassOutcome:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunEvents:
    """What the CLI shows while a run goes: phases, notices, each pass, and a target's progress."""

    on_phase: Callable[[str], None] | None = None
    on_notice: Callable[[str], None] | None = None
    on_pass: Callable[[PassOutcome], None] | None = None
    target: Events = field(default_factory=Events)

    def phase(self, text: str) -> None:
        if self.on_phase is not None:
            self.on_phase(text)

    def notice(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)


@dataclass
class RunResult:
    """What a run produced: its folder, record and report, and the closing line."""

    folder: Path
    record: RunRecord
    record_path: Path
    report: Path
    ok: bool
    summary: str
    passes: list[PassOutcome]
    reused: list[str]
    plan: Path | None = None


# ---------------------------------------------------------------------------
# the run


class _Run:
    """The state of one run while it goes (one instance per :func:`run` call)."""

    def __init__(self, request: RunRequest, *, zoo: Zoo, registry: Mapping[str, type[Pass]],
                 targets: Mapping[str, Target], events: RunEvents):
        self.request, self.zoo, self.registry, self.targets, self.events = request, zoo, registry, targets, events
        self.target = _target(targets, request.target)
        self.vendor = BENCH not in self.target.honours or EVAL not in self.target.honours
        self.notes: list[str] = []
        self.bisection = ""
        self.export_seconds = 0.0

    # -- 1. the model before ---------------------------------------------

    def resolve(self) -> None:
        request = self.request
        self.ref = resolve_model(request.model.arg, self.zoo, request.model.zoo_options)
        for notice in self.ref.notices:
            self.events.notice(notice)
            self.notes.append(notice)
        self.recipe = self.ref.recipe
        self.name = self.recipe.name if self.recipe else _stem(self.ref.path)
        self.source = load_model_file(self.ref.path)
        if request.passes is not None:
            specs: Sequence[PassSpec] = request.passes
        elif self.recipe is not None:
            specs = [(s.name, dict(s.options)) for s in self.recipe.default_passes]
        else:
            raise UsageError(f"{request.model.arg} is not a zoo model: give the passes to run (--pass NAME ...)")
        self.passes = build_passes(specs, self.registry)  # unknown passes and options fail before any work
        if not self.passes:
            raise UsageError(f"{self.name}: no passes to run (its recipe has none: give --pass NAME ...)")
        if request.budget is not None and all(p.exact for p in self.passes):
            raise UsageError(f"--budget {request.budget} judges inexact passes, and every pass of this run is exact")
        if (request.data is not None or request.generate is not None) and \
                (self.recipe is None or self.recipe.evaluation is None):
            raise UsageError(f"{self.name} is not a zoo model: --data/--generate evaluate a zoo model's task "
                             "(each pass of a plain model is still verified or judged by --budget)")
        if request.data is None and request.generate is None and request.budget is not None \
                and request.budget.labelled:
            raise UsageError(f"--budget {request.budget} needs labels: give --data DIR")
        self.batches = tuple(request.batches or (self.recipe.batches if self.recipe else None) or (1,))
        if self.recipe is not None and self.recipe.published.throughput:
            published = {b for col in self.recipe.published.throughput.values() for b in col}
            extra = [b for b in self.batches if b not in published]
            if extra:
                self.notes.append(f"batch {', '.join(map(str, extra))}: the guide published no figure to compare with")

    def open_folder(self) -> None:
        key = step_key("run", self.request.key_options(), {"model": self.source.digest}, __version__)
        self.folder = RunFolder.open(self.request.runs_root, self.name, key, path=self.request.run_dir)

    def before(self) -> None:
        def work(out: StepOutputs) -> dict[str, Any]:
            saved = save_model(self.source.model, out.path("before.onnx"))
            return {"digest": saved.digest, "summary": summarize(self.source.model).to_dict()}

        self.before_info = self.folder.step("before", step_key("before", {}, {"model": self.source.digest},
                                                                __version__), work)
        self.before_path = self.folder.file("before.onnx")

    # -- 2. passes, one at a time ------------------------------------------

    def run_passes(self, start_digest: str, start_path: Path, passes: Sequence[tuple[int, Pass]],
                   excluded: Mapping[int, str]) -> tuple[list[PassOutcome], str, Path]:
        """Apply each pass on the best model so far; (outcomes, final digest, final model path)."""
        outcomes: list[PassOutcome] = []
        digest, path = start_digest, start_path
        for index, p in passes:
            if index in excluded:
                outcome = PassOutcome(index=index, name=p.name, exact=p.exact, options=p.option_values(),
                                      decision=REVERTED, why=excluded[index])
            else:
                outcome = self.one_pass(index, p, digest, path)
            outcomes.append(outcome)
            if self.events.on_pass is not None:
                self.events.on_pass(outcome)
            if outcome.decision == KEPT and outcome.model_file and outcome.digest:
                digest, path = outcome.digest, self.folder.file(outcome.model_file)
        return outcomes, digest, path

    def one_pass(self, index: int, p: Pass, digest: str, path: Path) -> PassOutcome:
        request = self.request
        options = {"pass": p.name, "options": p.option_values(), "verify": dataclasses.asdict(request.verify),
                   "shapes": format_shapes(request.input_shapes), "budget": str(request.budget),
                   "fallback": request.fallback, "gate": request.perf_gate and not self.vendor,
                   "strict": request.strict, "target": request.target, "threads": request.threads}
        key = step_key("pass", options, {"model": digest}, __version__)
        name = f"pass-{index + 1:02d}-{p.name}"
        result = self.folder.step(name, key, lambda out: self._apply_one(index, p, path, out, name).to_dict())
        outcome = PassOutcome.from_dict(result)
        if outcome.decision == FAILED and request.strict:
            raise VerificationError(f"pass {p.name}: {outcome.why} (--strict)")
        return outcome

    def _apply_one(self, index: int, p: Pass, path: Path, out: StepOutputs, name: str) -> PassOutcome:
        request = self.request
        outcome = PassOutcome(index=index, name=p.name, exact=p.exact, options=p.option_values(), decision=KEPT)
        model = load_model_file(path).model
        extra = self._judges(p)
        started = time.perf_counter()
        try:
            result = apply(model, [p], verify=True, samples=request.verify.samples, seed=request.verify.seed,
                           atol=request.verify.atol, rtol=request.verify.rtol,
                           input_shapes=dict(request.input_shapes) or None, copy=False, extra_instruments=extra)
        except (VerificationError, PassError) as exc:
            outcome.seconds = time.perf_counter() - started
            outcome.decision = REVERTED if not request.strict else FAILED
            outcome.why = f"not verified: {exc}" if not isinstance(exc, PassError) else f"failed: {exc}"
            if request.strict:
                outcome.decision = FAILED
            return outcome
        outcome.seconds = time.perf_counter() - started
        step = result.steps[0]
        outcome.counts, outcome.notes = dict(step.counts), list(step.notes)
        outcome.options = dict(step.options)
        v = step.verification
        outcome.verification = {"status": v.status, "reasons": list(v.reasons), "hazards": list(v.hazards)}
        outcome.parity = _parity_text(step.figures.get("parity"))
        fidelity = step.figures.get("fidelity") or {}
        outcome.fidelity = fidelity.get("headline") or (f"skipped: {fidelity['skipped']}" if "skipped" in fidelity
                                                        else "")
        budget = step.figures.get("budget") or {}
        if "metric" in budget:
            outcome.budget = f"{budget.get('budget')}: {budget['metric']} {budget.get('before', float('nan')):.4f}" \
                             f" → {budget.get('after', float('nan')):.4f}"
        outcome.figures = {k: step.figures[k] for k in ("parity", "fidelity", "budget") if k in step.figures}
        if not step.changed or v.status == "unchanged":
            outcome.decision, outcome.why = NO_CHANGE, (step.notes[0] if step.notes else "nothing matched")
            return outcome
        if v.status == "unverified":
            reasons = "; ".join(v.reasons)
            if request.strict:
                outcome.decision, outcome.why = FAILED, f"NOT VERIFIED: {reasons}"
                return outcome
            outcome.why = f"kept, NOT VERIFIED: {reasons}"
        candidate = out.path(f"{name}.onnx")
        saved = save_model(result.model, candidate)
        outcome.model_file, outcome.digest = candidate.name, saved.digest
        if request.perf_gate and not self.vendor:
            speed = self._gate(path, candidate)
            outcome.speed = speed
            if speed.get("verdict") == "slower":
                outcome.decision = REVERTED
                outcome.why = (f"significantly slower on {request.target}: ×{speed['ratio']:.3f} "
                               f"[{speed['low']:.3f}, {speed['high']:.3f}] at batch {speed['batch']}")
                outcome.model_file = outcome.digest = None
                candidate.unlink()
                out.names.remove(candidate.name)
        return outcome

    def _judges(self, p: Pass) -> list[Any]:
        """The budget check (an inexact pass may move the task this far) and task-level fidelity of inexact passes."""
        request = self.request
        judges: list[Any] = []
        if p.exact:
            return judges
        if request.budget is not None:
            evaluator = evaluator_for(request.budget, self.recipe, data=request.data,
                                      input_shapes=dict(request.input_shapes) or None)
            judges.append(BudgetCheck(request.budget, evaluator, fallback=request.fallback))
        if self.recipe is not None and self.recipe.evaluation is not None:
            from surgery.eval.fidelity import FidelityInstrument

            instrument = FidelityInstrument.for_recipe(self.recipe, mode=request.mode,
                                                       input_shapes=dict(request.input_shapes) or None)
            if instrument is not None:
                judges.append(instrument)
        return judges

    def _gate(self, incumbent: Path, candidate: Path) -> dict[str, Any]:
        """The candidate against the incumbent, paired, at the first batch: is it significantly slower?"""
        batch = self.batches[0]
        settings = {"precision": GATE_PRECISION, "max_time": GATE_MAX_TIME}
        if self.request.threads is not None:
            settings["threads"] = self.request.threads
        request = Request(model=ModelSpec(str(incumbent)), others=(ModelSpec(str(candidate)),), batches=(batch,),
                          input_shapes=dict(self.request.input_shapes), settings=settings)
        outcome = self.target.bench(request, self.events.target)
        records = [m.records[0] for m in outcome.members]
        ratio = _speedup(records[0], records[1])
        if ratio is None:
            return {"batch": batch, "verdict": "not compared", "error": records[1].error or records[0].error}
        return {"batch": batch, **ratio}

    # -- 3. the whole run ------------------------------------------------

    def whole_check(self, outcomes: Sequence[PassOutcome]) -> tuple[bool, str] | None:
        """Does the final model still pass against the original? None when there is nothing to check."""
        kept = [o for o in outcomes if o.decision == KEPT and o.model_file]
        if len(kept) < 2:
            return None  # one pass was checked on its own against the model before it
        final = self.folder.file(kept[-1].model_file or "")
        return self._check_against_before(final, all(o.exact for o in kept))

    def _check_against_before(self, model_path: Path, exact: bool) -> tuple[bool, str] | None:
        request = self.request
        before = load_model_file(self.before_path).model
        after = load_model_file(model_path).model
        if request.budget is not None:
            evaluator = evaluator_for(request.budget, self.recipe, data=request.data,
                                      input_shapes=dict(request.input_shapes) or None)
            judgement = judge(request.budget, evaluator.bind(before), before, after)
            return (not judgement.holds), judgement.text()
        if not exact:
            return None  # inexact passes kept and no budget: their fidelity is the figure, nothing to fail
        return _parity_fails(before, after, request)

    def bisect(self, outcomes: list[PassOutcome]) -> int | None:
        """The index of the pass whose prefix first fails the whole-run check, or None."""
        kept = [o for o in outcomes if o.decision == KEPT and o.model_file]
        exact = all(o.exact for o in kept)

        def fails(prefix: Sequence[PassOutcome]) -> tuple[bool, str]:
            checked = self._check_against_before(self.folder.file(prefix[-1].model_file or ""), exact)
            return checked if checked is not None else (False, "")

        found = shortest_failing_prefix(kept, fails)
        if found.culprit is None:
            return None
        self.bisection = found.describe(lambda o: o.name)
        self.events.notice(f"bisection: {self.bisection}")
        return found.culprit.index

    # -- 4. before vs after on the target ----------------------------------

    def bench(self, after_digest: str) -> list[PerfRecord]:
        request = self.request
        settings: dict[str, Any] = {}
        for name in ("precision", "max_time", "threads"):
            if getattr(request, name) is not None:
                settings[name] = getattr(request, name)
        options = {"target": request.target, "batches": self.batches, "settings": settings,
                   "shapes": format_shapes(request.input_shapes)}
        key = step_key("bench", options, {"before": self.before_info["digest"], "after": after_digest}, __version__)

        def work(out: StepOutputs) -> list[dict[str, Any]]:
            bench = Request(model=ModelSpec(str(self.before_path)), others=(ModelSpec(str(self.after_path)),),
                            batches=self.batches, input_shapes=dict(request.input_shapes), settings=settings)
            outcome = self.target.bench(bench, self.events.target)
            rows = []
            for label, member in zip(("before", "after"), outcome.members, strict=True):
                for record in member.records:
                    record.extra["side"] = label
                    rows.append(record.to_dict())
            self.tools = outcome.tools
            return rows

        self.tools: dict[str, Any] = {}
        return [PerfRecord.from_dict(r) for r in self.folder.step("bench", key, work)]

    # -- 5. evaluation -----------------------------------------------------

    def evaluate(self, after_digest: str) -> dict[str, Any] | None:
        request = self.request
        if request.data is None and request.generate is None:
            return None
        from surgery.eval import before_after
        from surgery.eval import fidelity as fid

        assert self.recipe is not None and self.recipe.evaluation is not None  # resolve() refused it
        spec = fid.TaskSpec(self.recipe, request.mode)
        data_key = _data_key(request.data) if request.data else None
        options = {"data": data_key, "generate": request.generate, "limit": request.limit, "mode": request.mode,
                   "shapes": format_shapes(request.input_shapes)}
        key = step_key("eval", options, {"before": self.before_info["digest"], "after": after_digest}, __version__)

        def work(out: StepOutputs) -> dict[str, Any]:
            shape = shapes_at(model_inputs(self.source.model), None, dict(request.input_shapes))
            input_name = next(iter(shape))
            result = before_after.compare(spec, self._infer(self.before_path, spec), self._infer(self.after_path, spec),
                                          recipe=self.recipe, data=request.data, generate=request.generate,
                                          input_shape=shape[input_name], limit=request.limit)
            result.source = {"target": "ort-cpu" if self.vendor else request.target, "batch": 1}
            result.models = {"before": {"path": str(self.before_path), "digest": self.before_info["digest"]},
                             "after": {"path": str(self.after_path), "digest": after_digest}}
            return result.to_dict()

        self.events.phase("evaluation before and after")
        return self.folder.step("eval", key, work)

    def _infer(self, path: Path, spec: Any) -> Callable[[Any], Any]:
        """Inference through the target layer (onnxruntime CPU for vendor targets: their host scores NPU outputs)."""
        from surgery.eval.fidelity import output_name

        target = self.target if not self.vendor else _target(self.targets, "ort-cpu")
        request = Request(model=ModelSpec(str(path)),
                          settings={"threads": self.request.threads} if self.request.threads is not None else {})
        session_outputs = [o.name for o in load_model_file(path, load_external_data=False).model.graph.output]
        wanted = output_name(session_outputs, spec.output)
        input_name = model_inputs(load_model_file(path, load_external_data=False).model)[0].name

        def infer(batches: Any) -> Any:
            feeds = ({input_name: b} for b in batches)
            for outputs in target.infer(request, feeds, self.events.target, outputs=[wanted]):
                yield outputs[wanted]

        return infer

    # -- 6. vendor plan ------------------------------------------------------

    def vendor_plan(self) -> Plan:
        """Compile before and after and time both on the NPU host (AOE on the after model when asked)."""
        request = self.request
        plan = Plan(title=f"surgery run {self.name}: before vs after on {request.target}")
        settings = {"soc": request.soc} if request.soc else {}
        work = self.folder.path / "npu"
        for label, path in (("before", self.before_path), ("after", self.after_path)):
            verb = TUNE if (request.aoe and label == "after") else COMPILE
            extra = {"method": "aoe"} if verb == TUNE else {}
            sub = self.target.plan(verb, Request(model=ModelSpec(str(path)), batches=self.batches,
                                                 input_shapes=dict(request.input_shapes),
                                                 settings={**settings, **extra}, workdir=str(work / label)))
            plan.notes.extend(f"{label}: {n}" for n in sub.notes)
            plan.steps.extend(sub.steps)
            if verb == COMPILE:
                plan.steps.extend(self._bench_steps(sub, label, work / label))
        return plan

    def _bench_steps(self, compiled: Plan, label: str, work: Path) -> list[Any]:
        bencher = self.targets.get("ais-bench")
        if bencher is None:
            return []
        steps = []
        for step in compiled.steps:
            if step.info.kind != "atc" or not step.info.om:
                continue
            om = Path(step.cwd or ".") / step.info.om
            sub = bencher.plan(BENCH, Request(model=ModelSpec(str(om)), batches=(step.info.batch or 1,),
                                              workdir=str(work / f"bench-bs{step.info.batch}")))
            steps.extend(sub.steps)
        return steps


def run(request: RunRequest, *, zoo: Zoo, registry: Mapping[str, type[Pass]], targets: Mapping[str, Target],
        events: RunEvents | None = None) -> RunResult:
    """Run a model's whole loop (see the module docstring) and write its folder, record and report.

    Raises:
        UsageError: a bad request (unknown pass, a target that cannot do it, ...), before any work.
        VerificationError: with ``strict``, a pass not verified or over budget.
        ToolNotFoundError: a vendor target's tool is missing and ``dry_run`` was not asked.
    """
    events = events or RunEvents()
    state = _Run(request, zoo=zoo, registry=registry, targets=targets, events=events)
    if state.vendor and not request.dry_run:
        # a missing tool is said before the export and the passes, not after them
        state.target.require(TUNE if request.aoe else COMPILE)
    events.phase("export")
    started = time.perf_counter()
    state.resolve()
    state.export_seconds = round(time.perf_counter() - started, 3)
    state.open_folder()
    state.before()
    indexed = list(enumerate(state.passes))
    excluded: dict[int, str] = {}
    events.phase(f"passes ({len(indexed)})")
    outcomes, digest, path = state.run_passes(state.before_info["digest"], state.before_path, indexed, excluded)
    for _ in range(len(indexed)):  # each round reverts one pass; at most every pass
        checked = state.whole_check(outcomes)
        if checked is None or not checked[0]:
            break
        culprit = state.bisect(outcomes)
        if culprit is None:
            break
        if request.strict:
            raise VerificationError(f"the whole pipeline fails: {state.bisection} (--strict)")
        excluded[culprit] = f"reverted by bisection: {state.bisection}"
        events.phase("passes again, without the pass bisection named")
        outcomes, digest, path = state.run_passes(state.before_info["digest"], state.before_path, indexed, excluded)
    state.after_digest = digest

    def write_after(out: StepOutputs) -> dict[str, Any]:
        return {"digest": save_model(load_model_file(path).model, out.path("after.onnx")).digest}

    state.folder.step("after", step_key("after", {}, {"model": digest}), write_after)
    state.after_path = state.folder.file("after.onnx")
    records: list[PerfRecord] = []
    plan_path: Path | None = None
    if state.vendor:
        plan = state.vendor_plan()
        plan_path = state.folder.file("plan.sh")
        from surgery.atomic import write_text_atomic

        write_text_atomic(plan_path, _script(plan, state.folder.path))
        if not request.dry_run:
            records = _run_vendor(state)
    else:
        events.phase(f"before vs after on {request.target}, batch {', '.join(map(str, state.batches))}")
        records = state.bench(digest)
    evaluation = state.evaluate(digest)
    return _finish(state, outcomes, records, evaluation, plan_path, time.perf_counter() - started)


def _run_vendor(state: _Run) -> list[PerfRecord]:
    """Compile and time before and after through the vendor targets (CANN present)."""
    records: list[PerfRecord] = []
    request = state.request
    bencher = state.targets.get("ais-bench")
    for label, path in (("before", state.before_path), ("after", state.after_path)):
        work = state.folder.path / "npu" / label
        if request.aoe and label == "after":  # AOE tunes the after model: untuned and tuned builds, both timed
            tuned = state.target.tune(Request(model=ModelSpec(str(path)), batches=state.batches,
                                              input_shapes=dict(request.input_shapes), workdir=str(work),
                                              settings={"method": "aoe", **({"soc": request.soc} if request.soc
                                                                              else {})},
                                              timeout=request.timeout), state.events.target)
            for record in tuned.records:
                build = record.settings.get("build")
                record.extra["side"] = "after" if build == "aoe" else f"after ({build})"
                records.append(record)
            continue
        compiled = state.target.compile(Request(model=ModelSpec(str(path)), batches=state.batches,
                                                input_shapes=dict(request.input_shapes), workdir=str(work),
                                                settings={"soc": request.soc} if request.soc else {},
                                                timeout=request.timeout), state.events.target)
        for build in compiled.detail or []:
            batch = build.get("batch") or 1
            if not build.get("ok"):
                records.append(PerfRecord(target="ais-bench", batch=batch, error=str(build.get("error")),
                                          extra={"side": label}))
                continue
            if bencher is None:
                continue
            om = Path(build["om"])
            om = om if om.is_absolute() or om.exists() else work / om
            outcome = bencher.bench(Request(model=ModelSpec(str(om)), batches=(batch,),
                                            workdir=str(work / f"bench-bs{batch}"), timeout=request.timeout),
                                    state.events.target)
            for record in outcome.records:
                record.extra["side"] = label
                records.append(record)
    return records


# ---------------------------------------------------------------------------
# finishing: the record and the report


def _finish(state: _Run, outcomes: list[PassOutcome], records: list[PerfRecord], evaluation: dict[str, Any] | None,
            plan_path: Path | None, seconds: float) -> RunResult:
    from surgery.report import render
    from surgery.run_report import build_report, perf_rows

    request = state.request
    folder = state.folder
    record = RunRecord(command="run", target=request.target)
    record.input_model = {"path": str(state.before_path), "digest": state.before_info["digest"],
                          "zoo": state.recipe.name if state.recipe else None, "source": str(state.ref.path)}
    after = summarize(load_model_file(state.after_path).model)
    record.output_model = {"path": str(state.after_path), "digest": state.after_digest, "nodes": after.nodes}
    record.passes = [o.to_dict() for o in outcomes]
    record.perf = records
    record.eval = evaluation or {}
    record.tools = getattr(state, "tools", {})
    record.extra = {"run_folder": str(folder.path), "batches": list(state.batches), "notes": state.notes,
                    "bisection": state.bisection, "reused_steps": list(folder.reused),
                    "before_summary": state.before_info.get("summary"), "after_summary": after.to_dict(),
                    "plan": str(plan_path) if plan_path else None, "dry_run": request.dry_run,
                    # wall time by step in this run (export: resolving the model, a zoo export or a cache hit;
                    # a step reused from an earlier run: 0); the report and the run record itself come after
                    "step_seconds": {"export": state.export_seconds, **folder.seconds()}}
    ok, summary = _status(state, outcomes, records, evaluation, plan_path)
    record.status, record.reason = ("PASSED" if ok else "FAILED"), ("" if ok else summary)
    record_path = folder.file("run.json")
    record.save(record_path)
    rows = perf_rows(records, state.recipe)
    report = folder.file("report.html")
    from surgery.atomic import write_text_atomic

    write_text_atomic(report, render(build_report(record.to_dict(), rows, state.recipe,
                                                  f"{'PASSED' if ok else 'FAILED'} | {summary}")))
    folder.finish(status=record.status)
    return RunResult(folder=folder.path, record=record, record_path=record_path, report=report, ok=ok,
                     summary=f"{summary} ({seconds:.1f} s)", passes=outcomes, reused=list(folder.reused),
                     plan=plan_path)


def _status(state: _Run, outcomes: Sequence[PassOutcome], records: Sequence[PerfRecord],
            evaluation: dict[str, Any] | None, plan_path: Path | None) -> tuple[bool, str]:
    kept = [o.name for o in outcomes if o.decision == KEPT]
    reverted = [o.name for o in outcomes if o.decision in (REVERTED, FAILED)]
    unverified = [o.name for o in outcomes if o.decision == KEPT and o.verification.get("status") == "unverified"]
    parts = [f"{len(kept)}/{len(outcomes)} passes kept" + (f" ({', '.join(kept)})" if kept else "")]
    if reverted:
        parts.append(f"reverted: {', '.join(reverted)}")
    if unverified:
        parts.append(f"NOT VERIFIED: {', '.join(unverified)}")
    if records:
        from surgery.run_report import verdict_summary

        parts.append(verdict_summary(records))
    elif plan_path is not None:
        parts.append(f"the NPU host's plan is {plan_path}")
    if evaluation:
        parts.append(str(evaluation.get("headline", "")))
    failed_rows = [r for r in records if not r.ok]
    ok = not (records and len(failed_rows) == len(records))
    return ok, "; ".join(p for p in parts if p)


# ---------------------------------------------------------------------------
# helpers


def _target(targets: Mapping[str, Target], name: str) -> Target:
    if name not in targets:
        from surgery.errors import UnknownNameError

        raise UnknownNameError("target", name, targets)
    target = targets[name]
    if BENCH not in target.honours and COMPILE not in target.honours:
        raise UsageError(f"target {name} cannot run a model (targets: {', '.join(targets)})")
    return target


def _spec_text(spec: PassSpec) -> Any:
    if isinstance(spec, Pass):
        return {"pass": spec.name, "options": spec.option_values()}
    if isinstance(spec, str):
        return spec
    return [spec[0], dict(spec[1])]


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".onnx")] if name.endswith(".onnx") else path.stem


def _parity_text(parity: Mapping[str, Any] | None) -> str:
    if not parity:
        return ""
    if "skipped" in parity:
        return f"skipped: {parity['skipped']}"
    worst = None
    for name, d in parity.get("outputs", {}).items():
        if worst is None or d.get("max_abs", 0) > worst[1].get("max_abs", 0):
            worst = (name, d)
    if worst is None:
        return ""
    d = worst[1]
    return f"{worst[0]}: max abs {d.get('max_abs', 0):.3g}, cos {d.get('cosine', 1):.6f}"


def _speedup(a: PerfRecord, b: PerfRecord) -> dict[str, Any] | None:
    from surgery.pairing import speedup

    ratio = speedup(a, b)
    if ratio is None:
        return None
    return {"ratio": ratio.ratio, "low": ratio.low, "high": ratio.high, "verdict": ratio.verdict,
            "paired": True}


def _parity_fails(before: onnx.ModelProto, after: onnx.ModelProto, request: RunRequest) -> tuple[bool, str]:
    """The final model against the original on the verification samples: (fails, why)."""
    specs = model_inputs(before)
    try:
        shapes = shapes_at(specs, None, dict(request.input_shapes))
    except UsageError as exc:
        return False, f"not compared: {exc}"
    samples = random_samples(specs, shapes, count=request.verify.samples, seed=request.verify.seed)
    feeds = [s.feed for s in samples]
    try:
        old, new = Session(before), Session(after)
        expected = [old.run(f) for f in feeds]
        actual = [new.run(f) for f in feeds]
    except RuntimeError as exc:
        return True, f"the final model does not run like the original: {exc}"
    for name in actual[0]:
        if name not in expected[0]:
            continue
        d = compare_arrays(name, [e[name] for e in expected], [a[name] for a in actual], request.verify.atol,
                           request.verify.rtol)
        if not d.passed:
            return True, (f"output {name!r}: max abs {d.max_abs:.3g}, {d.mismatches}/{d.elements} elements beyond "
                          f"atol={request.verify.atol:g} rtol={request.verify.rtol:g} against the original")
    return False, "every output within tolerance of the original"


def _data_key(data: str) -> dict[str, Any]:
    """A dataset folder's identity for the step key: its path and the size and mtime of its files (not their bytes)."""
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"--data {data} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stat = [(str(p.relative_to(root)), p.stat().st_size, int(p.stat().st_mtime)) for p in files[:100_000]]
    return {"path": str(root.resolve()), "files": len(files),
            "digest": step_key("files", {"files": stat})}


def _relocate(plan: Plan, root: Path) -> Plan:
    """The plan with every path inside the run folder made relative to it: the folder travels to the NPU host."""
    prefix = str(root) + "/"

    def rel(text: str) -> str:
        return text.replace(prefix, "") if prefix in text else ("." if text == str(root) else text)

    steps = [dataclasses.replace(s, argv=tuple(rel(a) for a in s.argv), cwd=rel(s.cwd) if s.cwd else None,
                                 description=rel(s.description),
                                 produces=tuple(rel(x) for x in s.produces), makedirs=tuple(rel(x) for x in s.makedirs),
                                 env=tuple((k, rel(v)) for k, v in s.env)) for s in plan.steps]
    return Plan(title=plan.title, steps=steps, notes=[rel(n) for n in plan.notes])


def _script(plan: Plan, root: Path) -> str:
    """The plan as a script for the NPU host: copy the run folder there and run it (it changes into its folder).

    ``set -e`` is off on purpose: a batch that fails (out of memory) does not cost the others.
    """
    head = ["#!/usr/bin/env bash", "# written by surgery run: copy this run folder to the NPU host and run it there;",
            "# then `surgery import npu/*/*/*_summary.json --run <this run folder>` completes the report here.",
            'cd "$(dirname "$0")" || exit 1', ""]
    return "\n".join(head) + _relocate(plan, root).render()


__all__ = ["FAILED", "KEPT", "NO_CHANGE", "REVERTED", "PassOutcome", "RunEvents", "RunRequest", "RunResult",
           "VerifySettings", "run"]


# ---------------------------------------------------------------------------
# results that come back from the NPU host


def side_of(record: PerfRecord, path: str | Path | None = None) -> str | None:
    """``before`` or ``after`` from the om or output names the run's plan gave them (``before_bs4``...)."""
    texts = [str(record.model or ""), str(path or ""), str(record.extra.get("om") or "")]
    for text in texts:
        name = Path(text).name
        for side in ("before", "after"):
            if name.startswith(f"{side}_bs") or f"/{side}/" in text or f"{side}_bs" in name:
                return side
    return None


def attach(folder: str | Path, imported: Sequence[tuple[PerfRecord, str | Path | None]], *,
           recipe_of: Callable[[str], Any] | None = None) -> RunResult:
    """Add perf records measured on the NPU host to a run made with ``--dry-run``; the report is re-rendered.

    Args:
        folder: the run folder (it holds ``run.json``).
        imported: (record, the file it came from) pairs; the side (before/after) comes from the om name.
        recipe_of: zoo name → recipe, for the report's published columns.

    Raises:
        UsageError: not a run folder, or a record whose side cannot be told.
    """
    from surgery.atomic import write_text_atomic
    from surgery.records import load_record
    from surgery.report import render
    from surgery.run_report import build_report, perf_rows

    root = Path(folder)
    if not (root / "run.json").is_file():
        raise UsageError(f"--run {folder} is not a run folder (no run.json)")
    record = load_record(root / "run.json")
    if record.command != "run":
        raise UsageError(f"--run {folder}: its run.json is a {record.command} record, not a run's")
    added = []
    for perf, path in imported:
        side = perf.extra.get("side") or side_of(perf, path)
        if side is None:
            raise UsageError(f"{path}: cannot tell whether it measured the model before or after (the run's plan "
                             "names its oms before_bsN / after_bsN)")
        perf.extra["side"] = side
        added.append(perf)
    keep = [p for p in record.perf if (p.extra.get("side"), p.batch) not in {(a.extra["side"], a.batch) for a in added}]
    record.perf = [*keep, *added]
    record.extra["imported"] = [str(p) for _, p in imported]
    recipe = recipe_of((record.input_model or {}).get("zoo")) if recipe_of and record.input_model else None
    rows = perf_rows(record.perf, recipe)
    from surgery.run_report import verdict_summary

    summary = f"{len(added)} NPU records imported; {verdict_summary(record.perf)}"
    record.status = "PASSED"
    record.save(root / "run.json")
    report = root / "report.html"
    write_text_atomic(report, render(build_report(record.to_dict(), rows, recipe, f"PASSED | {summary}")))
    return RunResult(folder=root, record=record, record_path=root / "run.json", report=report, ok=True,
                     summary=summary, passes=[PassOutcome.from_dict(p) for p in record.passes], reused=[])
