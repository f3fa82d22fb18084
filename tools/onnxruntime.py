"""onnxruntime as a benchmark target: ``ort-cpu``, ``ort-cuda``, ``ort-trt``.

The embedded default target: it runs everywhere onnxruntime installs. CUDA and
TensorRT come from the ``onnxruntime-gpu`` wheel; asking for them where the installed
onnxruntime lacks them fails with one line naming the provider and how to get it.

Session settings (threads, graph optimization level, execution mode) are a frozen
:class:`OrtOptions`; ``surgery tune`` searches over them with :func:`session_candidates`.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import onnx

from surgery.bench import BenchModel, Reshaper, sweep
from surgery.errors import ToolNotFoundError, UnknownNameError, UsageError
from surgery.graph import is_large, load_model_file, runtime_source
from surgery.modelref import NO_ZOO, Zoo, resolve_model
from surgery.pass_infra import Pass
from surgery.records import PerfRecord
from surgery.search import Candidate, pass_candidates, search
from surgery.stats import DEFAULT_MIN_EFFECT
from surgery.targets.base import BENCH, EVAL, TUNE, Events, Member, Outcome, Request, Target
from surgery.targets.measure import (
    DEFAULT_MAX_TIME,
    DEFAULT_PRECISION,
    TUNE_MAX_TIME,
    TUNE_PRECISION,
    Job,
    Measure,
    ProgressFn,
    effective_batch,
    finish_record,
    interleave,
)
from surgery.targets.measure import describe_error as first_line
from surgery.targets.model import ModelSpec, TargetModel

# target -> execution providers in priority order (onnxruntime falls back left to right)
PROVIDERS: dict[str, tuple[str, ...]] = {
    "ort-cpu": ("CPUExecutionProvider",),
    "ort-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "ort-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
INSTALL_HINTS: dict[str, str] = {
    "ort-cpu": "pip install onnxruntime",
    "ort-cuda": "pip uninstall onnxruntime && pip install onnxruntime-gpu (needs CUDA and cuDNN libraries)",
    "ort-trt": "pip uninstall onnxruntime && pip install onnxruntime-gpu tensorrt (needs CUDA and TensorRT "
               "libraries on LD_LIBRARY_PATH)",
}
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
SPINNING_TOGETHER = ("--spinning measures one model at a time: models measured together run with spinning off, or "
                     "an idle session's threads take cores from the timed one")
EXECUTION_MODES = ("sequential", "parallel")


@dataclass(frozen=True)
class OrtOptions:
    """onnxruntime session settings for one target. 0 threads means onnxruntime's default."""

    target: str = "ort-cpu"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    graph_optimization: str = "all"
    execution_mode: str = "sequential"
    # intra-op threads spin-wait for work between calls (onnxruntime's own default is on). Off here for
    # every measurement, alone or together, so that records measured apart and together compare like
    # with like: with several sessions in one process an idle session's spinning pool takes cores
    # from the one being timed (with a busy core beside it, the conv stack of benchmarks/bench_ab.py
    # ran 4.03 ms a call spinning and 2.05 ms not, and the A/B ratio of two identical sessions spread
    # 0.977-1.106 spinning vs 0.995-1.024 not). ``surgery bench --spinning`` measures one model with it on
    spinning: bool = False

    def __post_init__(self) -> None:
        if self.target not in PROVIDERS:
            raise UnknownNameError("onnxruntime target", self.target, PROVIDERS)
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a non-negative integer, got {value!r}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION:
            raise UsageError(f"graph optimization {self.graph_optimization!r} is not one of "
                             f"{', '.join(GRAPH_OPTIMIZATION)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise UsageError(f"execution mode {self.execution_mode!r} is not one of {', '.join(EXECUTION_MODES)}")

    def settings(self) -> dict[str, Any]:
        """The options as a plain dict, for records."""
        return asdict(self)

    def describe(self) -> str:
        """Only what differs from the defaults, e.g. ``intra_op_threads=2``."""
        default = OrtOptions(target=self.target)
        diff = [f"{k}={v}" for k, v in asdict(self).items() if k != "target" and getattr(default, k) != v]
        return ", ".join(diff) or "default session settings"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        raise ToolNotFoundError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnxruntime


def version() -> str:
    """The installed onnxruntime's version."""
    return str(_ort().__version__)


def available_targets() -> list[str]:
    """Targets whose first execution provider the installed onnxruntime offers."""
    have = set(_ort().get_available_providers())
    return [t for t, providers in PROVIDERS.items() if providers[0] in have]


def is_available(target: str) -> bool:
    """Whether ``target`` can run here (its provider is compiled into the installed onnxruntime)."""
    if target not in PROVIDERS:
        raise UnknownNameError("onnxruntime target", target, PROVIDERS)
    return target in available_targets()


def require(target: str) -> None:
    """Raise ToolNotFoundError (one line: provider and how to get it) when ``target`` cannot run."""
    if is_available(target):
        return
    ort = _ort()
    have = ", ".join(p.replace("ExecutionProvider", "") for p in ort.get_available_providers())
    raise ToolNotFoundError(f"target {target} needs {PROVIDERS[target][0]}, which onnxruntime {ort.__version__} "
                            f"here does not have (providers: {have}): {INSTALL_HINTS[target]}")


def session_options(options: OrtOptions) -> Any:
    """An ``onnxruntime.SessionOptions`` from our settings."""
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if options.execution_mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    return so


def make_session(model: str | os.PathLike | bytes | onnx.ModelProto, options: OrtOptions | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model`` on ``options.target``.

    Raises:
        ToolNotFoundError: the target's provider is not in this onnxruntime, or it is but
            failed to load (missing CUDA/TensorRT libraries: onnxruntime would silently fall
            back to the CPU, and the numbers would be a lie).
        RuntimeError: onnxruntime rejected the model (first line of its message).
    """
    options = options or OrtOptions()
    require(options.target)
    ort = _ort()
    source: Any = model
    if isinstance(model, (str, os.PathLike)):
        source = str(Path(model))
    try:
        with tempfile.TemporaryDirectory(prefix="surgery-session-") as tmp:  # a model above 2 GB goes via a file
            if isinstance(model, onnx.ModelProto):
                source = runtime_source(model, tmp)
            session = ort.InferenceSession(source, session_options(options),
                                           providers=list(PROVIDERS[options.target]))
    except Exception as exc:
        raise RuntimeError(f"onnxruntime cannot load the model: {first_line(exc)}") from exc
    wanted = PROVIDERS[options.target][0]
    if wanted not in session.get_providers():
        raise ToolNotFoundError(f"target {options.target}: {wanted} is installed but failed to initialise "
                                f"(session fell back to {', '.join(session.get_providers())}): "
                                f"{INSTALL_HINTS[options.target]}")
    return session


class _Prepared:
    """A live session with its feed, warmed up, collecting latencies across rounds."""

    def __init__(self, job: Job, options: OrtOptions):
        self.session = make_session(job.source, options)
        self.names = [o.name for o in self.session.get_outputs()]
        self.feed = job.feed
        self.outputs: list[Any] = []
        self.latencies: list[float] = []
        self.providers = self.session.get_providers()

        # a C-level partial: the timed call adds no Python frame over a bare ``session.run`` loop
        self.call = functools.partial(self.session.run, self.names, self.feed)


def run_jobs(jobs: Sequence[Job], measure: Measure, on_progress: ProgressFn | None = None) -> list[PerfRecord]:
    """The ``ort-*`` runner for :func:`surgery.bench.sweep`: one PerfRecord per job.

    Every session is created and called once first (allocation; its outputs give the
    effective batch), then :func:`surgery.targets.measure.interleave` warms them up and
    times them in rotating rounds until the precision goal, the time cap or the fixed
    count. A job that fails to load or run becomes a record with ``error`` and the others
    go on.
    """
    records: list[PerfRecord] = []
    live: list[tuple[int, _Prepared]] = []
    together = len(jobs) > 1
    for job in jobs:
        options = job.options if isinstance(job.options, OrtOptions) else OrtOptions()
        if together and options.spinning:
            raise UsageError(SPINNING_TOGETHER)
        rec = PerfRecord(target=options.target, batch=0, target_version=version(), warmup=1,
                         source="measured", settings=options.settings())
        records.append(rec)
        try:
            prepared = _Prepared(job, options)
            prepared.outputs = prepared.call()
        except ToolNotFoundError:
            raise
        except Exception as exc:  # OOM, unsupported op or shape: this row fails, the sweep goes on
            rec.error = first_line(exc)
            continue
        rec.settings["providers"] = prepared.providers
        live.append((len(records) - 1, prepared))
    if not live:
        return records
    timed = interleave([p.call for _, p in live], measure, warmed=1, on_progress=on_progress)
    for pos, (i, prepared) in enumerate(live):
        rec = records[i]
        rec.warmup = timed.warmup[pos]
        if timed.errors[pos] is not None:
            rec.error = timed.errors[pos]
            continue
        rec.latencies_ms = timed.latencies[pos]
        rec.rounds = timed.rounds[pos]
        rec.iterations = len(rec.latencies_ms)
        rec.stop = timed.stop
        # no interval yet (too few rounds) is recorded as None: JSON has no infinity
        rec.half_width = timed.half_width if timed.half_width is not None and math.isfinite(timed.half_width) \
            else None
        if timed.size > 1:
            rec.pairing = {"index": timed.positions[pos], "size": timed.size}
        rec.effective_batch = effective_batch(prepared.feed, prepared.outputs)
        finish_record(rec)
    return records


def bench(model: str | os.PathLike | bytes | onnx.ModelProto, feed: dict[str, Any], options: OrtOptions | None = None,
          *, measure: Measure | None = None, on_progress: ProgressFn | None = None) -> PerfRecord:
    """Measure one model with one feed: latency samples, statistics, effective batch, throughput.

    ``batch`` in the record is the effective batch (the feed's leading dimension); use
    :func:`surgery.bench.sweep` with :func:`run_jobs` for a sweep over batch sizes with
    re-shaping and failed rows.
    """
    options = options or OrtOptions()
    if isinstance(model, onnx.ModelProto) and is_large(model):
        raise UsageError("a model above 2 GB is benchmarked from its file: pass the path, not the ModelProto")
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    source = str(source) if isinstance(source, os.PathLike) else source
    record = run_jobs([Job(source=source, options=options, feed=feed)], measure or Measure(), on_progress)[0]
    record.batch = record.effective_batch or effective_batch(feed)
    return record


def session_candidates(options: OrtOptions, cores: int | None = None) -> list[dict[str, Any]]:
    """Session-setting changes worth trying from ``options``: thread counts, optimization levels, mode.

    Each is a dict of OrtOptions fields; the ones equal to the current settings are left out.
    """
    cores = cores or os.cpu_count() or 1
    threads = sorted({1, cores, *(2 ** k for k in range(1, 6) if 2 ** k < cores)})
    out: list[dict[str, Any]] = [{"intra_op_threads": n} for n in threads if n != options.intra_op_threads]
    out += [{"graph_optimization": level} for level in GRAPH_OPTIMIZATION if level != options.graph_optimization]
    if options.execution_mode != "parallel":
        out.append({"execution_mode": "parallel"})
    return out


def apply_settings(options: OrtOptions, change: dict[str, Any]) -> OrtOptions:
    """``options`` with ``change`` applied (validated)."""
    return replace(options, **change)


# ---------------------------------------------------------------------------
# the target

SESSION_SETTINGS = frozenset({"threads", "inter_op_threads", "graph_optimization", "execution_mode"})
MEASURE_SETTINGS = frozenset({"warmup", "iterations", "min_time", "max_time", "precision", "seed"})
SEARCH_SETTINGS = frozenset({"passes", "no_passes", "no_session_settings", "min_effect", "samples", "atol", "rtol"})
# an accuracy budget makes quantize_int8 a candidate (surgery.budget_eval.quantize_candidate)
BUDGET_SETTINGS = frozenset({"budget", "fallback", "fallback_layers", "budget_data", "budget_samples", "calib"})
DEFAULT_BENCH_BATCHES = (1, 4, 8, 16, 32)  # the guides' perf-table rows


class OrtTarget(Target):
    """onnxruntime in this process: ``ort-cpu``, ``ort-cuda``, ``ort-trt``.

    Benchmarks sweep batch sizes with :func:`surgery.bench.sweep` over :func:`run_jobs`; several
    models given together are measured together (interleaved rounds, one pairing per batch).
    Tuning is :func:`surgery.search.search` over exact passes and session settings, each
    comparison measured the same way. The zoo, the pass registry and the batch reshaper
    (``fix_shapes``) are handed in by the caller.
    """

    honours: ClassVar[Mapping[str, frozenset[str]]] = {
        BENCH: SESSION_SETTINGS | MEASURE_SETTINGS | {"no_reshape", "spinning"},
        TUNE: SESSION_SETTINGS | MEASURE_SETTINGS | SEARCH_SETTINGS | BUDGET_SETTINGS,
        EVAL: SESSION_SETTINGS}
    paired: ClassVar[frozenset[str]] = frozenset({BENCH})

    def __init__(self, name: str, *, zoo: Zoo = NO_ZOO, registry: Mapping[str, type[Pass]] | None = None,
                 reshaper: Reshaper | None = None):
        if name not in PROVIDERS:
            raise UnknownNameError("onnxruntime target", name, PROVIDERS)
        self.name = name
        self.summary = f"onnxruntime with {PROVIDERS[name][0]}, in this process"
        self.zoo, self.registry, self.reshaper = zoo, dict(registry or {}), reshaper

    def session_options(self, request: Request) -> OrtOptions:
        return OrtOptions(target=self.name, intra_op_threads=request.get("threads", 0),
                          inter_op_threads=request.get("inter_op_threads", 0),
                          graph_optimization=request.get("graph_optimization", "all"),
                          execution_mode=request.get("execution_mode", "sequential"),
                          spinning=request.get("spinning", False))

    @staticmethod
    def measure(request: Request, *, warmup: int, precision: float = DEFAULT_PRECISION,
                max_time: float = DEFAULT_MAX_TIME) -> Measure:
        """The measurement the request asks for: a fixed ``--iterations``, or a precision goal within a time cap.

        Raises:
            UsageError: ``--iterations`` with any of ``--precision``, ``--min-time``, ``--max-time``.
        """
        iterations = request.get("iterations")
        timed = [f"--{n.replace('_', '-')}" for n in ("precision", "min_time", "max_time")
                 if request.get(n) is not None]
        if iterations is not None and timed:
            raise UsageError(f"--iterations fixes the number of calls; it does not combine with {timed[0]}")
        min_time = request.get("min_time", 0.0)
        # a --min-time above the default cap raises the cap, unless --max-time says otherwise
        cap = request.get("max_time", max(max_time, min_time))
        return Measure(warmup=request.get("warmup", warmup), iterations=iterations, min_time=min_time, max_time=cap,
                       precision=request.get("precision", precision))

    def _resolve(self, request: Request, events: Events, default_batches: Sequence[int]
                 ) -> tuple[TargetModel, onnx.ModelProto]:
        return self._resolve_spec(request.model, request, events, default_batches)

    def _resolve_spec(self, spec: ModelSpec, request: Request, events: Events, default_batches: Sequence[int]
                      ) -> tuple[TargetModel, onnx.ModelProto]:
        ref = resolve_model(spec.arg, self.zoo, spec.zoo_options)
        for notice in ref.notices:
            events.notice(notice)
        loaded = load_model_file(ref.path)
        batches = tuple(request.batches or (ref.recipe.batches if ref.recipe else None) or default_batches)
        model = TargetModel(name=ref.label, onnx=ref.path, batches=batches, shapes={}, recipe=ref.recipe,
                            digest=loaded.digest, nbytes=loaded.nbytes)
        return model, loaded.model

    def bench(self, request: Request, events: Events) -> Outcome:
        """Measure the model(s) at every batch size: one record per model and batch (failed batches keep ``error``).

        With several models they are measured together at each batch (the first model's
        batch sizes), and ``Outcome.members`` holds each one's records.
        """
        self.check(BENCH, request)
        options = self.session_options(request)
        if options.spinning and len(request.models) > 1:  # refused before any model is resolved or exported
            raise UsageError(SPINNING_TOGETHER)
        measure = self.measure(request, warmup=5)
        require(self.name)
        resolved = [self._resolve_spec(spec, request, events, DEFAULT_BENCH_BATCHES) for spec in request.models]
        batches = resolved[0][0].batches
        if events.on_total is not None:
            events.on_total(len(batches))
        reshaper = None if request.get("no_reshape", False) else self.reshaper
        models = [BenchModel(proto, options, label=m.name, digest=m.digest, name=m.name) for m, proto in resolved]
        per_model = sweep(models, run_jobs, target=self.name, batches=batches, measure=measure,
                          input_shapes=dict(request.input_shapes), reshaper=reshaper,
                          seed=request.get("seed", 0), on_batch=events.on_batch, on_progress=events.on_progress)
        members = [Member(model=m, records=recs) for (m, _), recs in zip(resolved, per_model, strict=True)]
        first = members[0]
        return Outcome(records=first.records, tools={"onnxruntime": {"version": version(), **options.settings()}},
                       model=first.model, detail={"measure": measure.to_dict(), "batches": list(batches)},
                       members=members if len(members) > 1 else [])

    def tune(self, request: Request, events: Events) -> Outcome:
        """Keep-or-revert search over exact passes and session settings; the result is ``Outcome.detail``."""
        self.check(TUNE, request)
        options = self.session_options(request)
        measure = self.measure(request, warmup=3, precision=TUNE_PRECISION, max_time=TUNE_MAX_TIME)
        candidates: list[Candidate] = []
        if not request.get("no_passes", False):
            candidates += pass_candidates(self.registry, request.get("passes"))
        if not request.get("no_session_settings", False):
            candidates += [Candidate.for_setting(c) for c in session_candidates(options)]
        if not candidates:
            raise UsageError("nothing to try: drop --no-passes or --no-session-settings")
        require(self.name)
        model, proto = self._resolve(request, events, (1,))
        shapes = dict(request.input_shapes)
        budget = request.get("budget")
        if budget is not None and not request.get("no_passes", False):  # after the exact passes, before settings
            from surgery.budget_eval import quantize_candidate

            at = sum(1 for c in candidates if c.kind == "pass")
            candidates.insert(at, quantize_candidate(
                self.registry, budget, model.recipe, fallback=request.get("fallback", False),
                max_layers=request.get("fallback_layers"), data=request.get("budget_data"),
                samples=request.get("budget_samples", 32), calib=request.get("calib"), input_shapes=shapes or None))
        elif budget is None and any(request.get(k) is not None for k in BUDGET_SETTINGS):
            raise UsageError("--fallback, --budget-data, --budget-samples and --calib go with --budget (the INT8 "
                             "candidate)")
        if events.on_total is not None:
            events.on_total(len(candidates) + 1)
        seed = request.get("seed", 0)

        def measure_fn(models: Sequence[BenchModel], batches: Sequence[int]) -> list[list[PerfRecord]]:
            return sweep(models, run_jobs, target=self.name, batches=batches, measure=measure, input_shapes=shapes,
                         reshaper=self.reshaper, seed=seed)

        from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL

        result = search(proto, options=options, measure=measure_fn, candidates=candidates, batch=model.batches[0],
                        batches=model.batches, min_effect=request.get("min_effect", DEFAULT_MIN_EFFECT),
                        samples=request.get("samples", 3), seed=seed, atol=request.get("atol", DEFAULT_ATOL),
                        rtol=request.get("rtol", DEFAULT_RTOL), input_shapes=shapes or None, digest=model.digest,
                        precision=measure.precision, confidence=measure.confidence,
                        on_trial=events.on_trial, on_phase=events.on_phase)
        tools = {"onnxruntime": {"version": version(), "before": options.settings(),
                                 "after": result.options.settings(), "best": result.options.describe()}}
        return Outcome(records=result.after, tools=tools, model=model, detail=result)

    def infer(self, request: Request, batches: Iterable[Mapping[str, Any]], events: Events,
              outputs: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """One session for the model; each batch of feeds run through it, lazily (``surgery eval``).

        A static batch axis is met as ais_bench meets it (:func:`surgery.eval.runner.fit_static_batch`).

        Raises:
            UsageError: the model does not run on a batch (one line naming its shapes).
        """
        from surgery.eval.runner import fit_static_batch

        self.check(EVAL, request)
        require(self.name)
        ref = resolve_model(request.model.arg, self.zoo, request.model.zoo_options)
        for notice in ref.notices:
            events.notice(notice)
        session = make_session(ref.path, self.session_options(request))
        names = list(outputs) if outputs else [o.name for o in session.get_outputs()]
        static = {i.name: i.shape[0] for i in session.get_inputs() if i.shape and isinstance(i.shape[0], int)}

        def run(feed: dict[str, Any]) -> dict[str, Any]:
            try:
                return dict(zip(names, session.run(names, feed), strict=True))
            except Exception as exc:
                shapes = ", ".join(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in feed.items())
                raise UsageError(f"{ref.path} does not run on {shapes}: {first_line(exc)}") from None

        return fit_static_batch(run, (dict(b) for b in batches), static)
