"""The batch sweep behind ``surgery bench``: shapes, feeds, reshaping, effective batch, failed rows.

Target-independent. A *runner* (one per target, e.g. ``surgery.tools.onnxruntime.run_jobs``)
measures prepared jobs; this module decides what each batch size runs:

- a model whose batch axis is dynamic runs the asked batch as is;
- a model with a static batch that differs is re-shaped with ``fix_shapes`` (never timed
  at its own batch and reported as the asked one), or refused when ``reshape=False`` or
  re-shaping fails;
- a batch that fails (refused, out of memory, rejected by the runtime) becomes a
  :class:`PerfRecord` with ``error`` set, and the sweep goes on.

Throughput always comes from the *effective* batch: the leading dimension of the inputs
the model actually received.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx

from surgery import errors
from surgery.errors import SurgeryError, ToolNotFoundError, UsageError
from surgery.graph import EXTERNAL_DATA_THRESHOLD, model_digest
from surgery.parity import InputSpec, model_inputs, random_feed
from surgery.records import PerfRecord
from surgery.shapes import Shape, format_shape
from surgery.stats import latency_stats, throughput

ProgressFn = Callable[[float], None]  # fraction of the current batch done, 0..1


class BatchRefused(SurgeryError):
    """A batch size this model cannot run as asked (static batch and no re-shaping)."""


@dataclass(frozen=True)
class Measure:
    """How long to measure each job: warm-up calls, then a fixed count or a minimum time.

    ``rounds`` > 1 splits the measurement of several jobs into interleaved rounds
    (A B A B ...) so drift on a shared host hits every job alike.
    """

    warmup: int = 5
    iterations: int | None = None
    min_time: float | None = 1.0  # seconds per job, used when iterations is None
    min_iterations: int = 10
    max_iterations: int = 1_000_000
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.iterations is not None and self.iterations < 1:
            raise UsageError(f"--iterations must be >= 1, got {self.iterations}")
        if self.iterations is None and (self.min_time is None or self.min_time <= 0):
            raise UsageError("give --iterations N or a positive --min-time S")
        if self.rounds < 1:
            raise UsageError(f"rounds must be >= 1, got {self.rounds}")

    def per_round(self, round_index: int) -> tuple[int | None, float | None]:
        """(iterations, seconds) for one round; iteration counts are spread over rounds exactly."""
        if self.iterations is not None:
            base, extra = divmod(self.iterations, self.rounds)
            return base + (1 if round_index < extra else 0), None
        return None, (self.min_time or 0) / self.rounds

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Job:
    """One thing a runner measures at one batch size: a model source, target options, a feed."""

    source: bytes | str  # serialised model, or a path for models above 2 GB
    options: Any
    feed: dict[str, np.ndarray]


class Runner(Protocol):
    """A target's measurement: one PerfRecord per job, failures as records with ``error``."""

    def __call__(self, jobs: Sequence[Job], measure: Measure,
                 on_progress: ProgressFn | None = None) -> list[PerfRecord]: ...


@dataclass(frozen=True)
class Variant:
    """A model (and target options) to sweep; several variants are measured interleaved."""

    model: onnx.ModelProto
    options: Any = None
    label: str = ""
    digest: str | None = None
    name: str | None = None  # a path or zoo name for the record


@dataclass
class BatchPlan:
    """What one variant runs at one batch size."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    reshaped_from: int | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# timing


def time_calls(run: Callable[[], object], *, iterations: int | None = None, seconds: float | None = None,
               min_iterations: int = 1, max_iterations: int = 1_000_000,
               on_progress: ProgressFn | None = None, report_every: float = 0.1) -> list[float]:
    """Wall time of each call of ``run`` in ms: ``iterations`` calls, or until ``seconds`` have passed.

    The timed loop is ``run(); stamps.append(clock())``: one clock read per call, and each
    latency is the time between consecutive stamps, so the latencies add up to the loop's
    wall time (nothing between calls goes unmeasured, and nothing is counted twice).
    Progress, deadline checks and bookkeeping happen between chunks of calls, outside the
    stamps; chunks double in size until one lasts about 10 ms.
    """
    clock = time.perf_counter
    target = iterations if iterations is not None else max_iterations
    chunks: list[list[float]] = []
    start = clock()
    next_report = start + report_every
    done, chunk = 0, 1
    while done < target:
        k = min(chunk, target - done)
        stamps = [clock()]
        append = stamps.append
        for _ in range(k):
            run()
            append(clock())
        chunks.append(stamps)
        done += k
        now = stamps[-1]
        if now - stamps[0] < 0.01:
            chunk *= 2
        if iterations is None and now - start >= (seconds or 0.0) and done >= min_iterations:
            break
        if on_progress is not None and now >= next_report:
            on_progress(done / iterations if iterations is not None else min(1.0, (now - start) / (seconds or 1.0)))
            next_report = now + report_every
    if on_progress is not None:
        on_progress(1.0)
    return (np.concatenate([np.diff(c) for c in chunks]) * 1000.0).tolist()


def effective_batch(feed: dict[str, np.ndarray], outputs: Sequence[Any] = ()) -> int:
    """The batch the model really ran: the leading dimension of the inputs it received.

    When inputs disagree (a side input of its own size), the outputs' common leading
    dimension decides if it is one of them; otherwise the largest input dimension.
    Outputs alone never decide: a reduction over the batch has a leading 1.
    """
    dims = {int(np.shape(v)[0]) for v in feed.values() if np.ndim(v) >= 1}
    if not dims:
        return 1
    if len(dims) == 1:
        return dims.pop()
    out_dims = {int(np.shape(o)[0]) for o in outputs if np.ndim(o) >= 1}
    if len(out_dims) == 1 and (d := out_dims.pop()) in dims:
        return d
    return max(dims)


def finish_record(record: PerfRecord) -> PerfRecord:
    """Fill statistics and throughput from the latency samples and effective batch."""
    record.stats = latency_stats(record.latencies_ms)
    if record.stats and record.effective_batch:
        record.throughput = throughput(record.effective_batch, record.stats["mean"])
    return record


# ---------------------------------------------------------------------------
# shapes


def batch_axis_dims(specs: Sequence[InputSpec]) -> dict[str, int | str]:
    """Axis 0 of each input with a rank (a static size, or a symbol when dynamic)."""
    return {s.name: s.shape[0] for s in specs if s.shape}


def static_batch(model: onnx.ModelProto) -> int | None:
    """The model's static batch if every input fixes axis 0 to one same size, else None."""
    dims = set(batch_axis_dims(model_inputs(model)).values())
    if len(dims) == 1 and isinstance(d := next(iter(dims)), int) and d > 0:
        return d
    return None


def batch_shapes(specs: Sequence[InputSpec], batch: int, given: dict[str, Shape] | None = None
                 ) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes at ``batch``: given sizes and static dims, axis 0 set to ``batch``.

    Raises:
        UsageError: an unknown input name, a rank mismatch, or a dynamic non-batch axis
            with no size given.
    """
    given = dict(given or {})
    names = {s.name for s in specs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise UsageError(f"--input-shapes names {', '.join(unknown)}, not an input of the model "
                         f"(inputs: {', '.join(s.name for s in specs)})")
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        dims: list[int | str] = list(given.get(spec.name, spec.shape))
        if spec.name in given and spec.shape and len(dims) != len(spec.shape):
            raise UsageError(f"input {spec.name!r} has rank {len(spec.shape)}, "
                             f"--input-shapes gives {format_shape(dims)}")
        if dims:
            dims[0] = batch
        for axis, d in enumerate(dims):
            if not isinstance(d, int) or d <= 0:
                example = format_shape([batch if i == 0 else (x if isinstance(x, int) and x > 0 else "N")
                                        for i, x in enumerate(dims)])
                raise UsageError(f"input {spec.name!r} has a dynamic axis {axis} ({d!r}): give its size with "
                                 f"--input-shapes {spec.name}:{example}")
        out[spec.name] = tuple(int(d) for d in dims)
    return out


def plan_batch(model: onnx.ModelProto, batch: int, *, input_shapes: dict[str, Shape] | None = None,
               reshape: bool = True) -> BatchPlan:
    """Decide what ``model`` runs at ``batch``: as is, re-shaped with fix_shapes, or refused.

    Raises:
        BatchRefused: static batch and ``reshape=False``, no batch axis, or fix_shapes failed.
        UsageError: shapes that cannot be resolved (see :func:`batch_shapes`).
    """
    specs = model_inputs(model)
    axis0 = batch_axis_dims(specs)
    if not axis0:
        if batch != 1:
            raise BatchRefused(f"batch {batch} refused: the model's inputs have no batch axis (all scalars)")
        return BatchPlan(model=model, shapes=batch_shapes(specs, 1, input_shapes))
    statics = {d for d in axis0.values() if isinstance(d, int) and d > 0}
    if statics <= {batch}:  # dynamic, or already static at this batch
        return BatchPlan(model=model, shapes=batch_shapes(specs, batch, input_shapes))
    fixed = ", ".join(f"{n}:{d}" for n, d in axis0.items() if isinstance(d, int) and d > 0)
    current = min(statics)
    if not reshape:
        raise BatchRefused(f"batch {batch} refused: the model has a static batch ({fixed}) and re-shaping is "
                           "off (--no-reshape); re-export it with a dynamic batch or drop --no-reshape")
    from surgery.passes import make_pass

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        result = make_pass("fix_shapes", {"batch": str(batch)})(copy)
    except SurgeryError as exc:
        raise BatchRefused(f"batch {batch} refused: the model has a static batch ({fixed}) and fix_shapes "
                           f"cannot re-shape it: {exc}") from None
    notes = [f"re-shaped with fix_shapes batch={batch} (static batch {current})"]
    notes.extend(n for n in result.notes if "constant target shape" in n)
    return BatchPlan(model=result.model, shapes=batch_shapes(model_inputs(result.model), batch, input_shapes),
                     reshaped_from=current, notes=notes)


def model_source(model: onnx.ModelProto, tmpdir: str | None = None) -> bytes | str:
    """Bytes for a runtime to load; a file in ``tmpdir`` for models above protobuf's 2 GB limit."""
    if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
        return model.SerializeToString()
    if tmpdir is None:
        raise UsageError("model above 2 GB: a temporary folder is needed to benchmark it")
    import os

    path = os.path.join(tmpdir, f"model-{time.monotonic_ns()}.onnx")
    onnx.save_model(model, path, save_as_external_data=True, location=os.path.basename(path) + ".data")
    return path


# ---------------------------------------------------------------------------
# sweep


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of an error, for a failed batch row."""
    return f"{type(exc).__name__}: {errors.first_line(exc, 300)}" if str(exc).strip() else type(exc).__name__


def sweep(
    variants: Sequence[Variant],
    runner: Runner,
    *,
    target: str,
    batches: Sequence[int],
    measure: Measure,
    input_shapes: dict[str, Shape] | None = None,
    reshape: bool = True,
    seed: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[list[PerfRecord]]:
    """Measure every variant at every batch size; one list of records per variant.

    Args:
        variants: the models (and target options) to measure; with several, each batch
            measures them together through the runner (interleaved when ``measure.rounds`` > 1).
        runner: the target's measurement function.
        target: the target name written into each record.
        batches: batch sizes, in order.
        measure: warm-up, iterations or minimum time, rounds.
        input_shapes: sizes for dynamic non-batch axes (axis 0 is always the batch).
        reshape: re-shape a static batch with fix_shapes (else refuse other batch sizes).
        seed: seed of the random feed (the same feed for every variant at a batch).
        on_batch: called with (index, batch) before each batch.
        on_progress: called with the fraction of the current batch done.

    Raises:
        UsageError: shapes that cannot be resolved for any batch (checked before measuring).
        ToolNotFoundError: the runner's runtime or provider is missing.
    """
    import tempfile

    for v in variants:  # bad --input-shapes is a usage error, not a failed row per batch
        batch_shapes(model_inputs(v.model), 1, input_shapes)
    results: list[list[PerfRecord]] = [[] for _ in variants]
    sources: dict[int, bytes | str] = {}
    with tempfile.TemporaryDirectory(prefix="surgery-bench-") as tmpdir:
        for index, batch in enumerate(batches):
            if on_batch is not None:
                on_batch(index, batch)
            jobs: list[Job] = []
            slots: list[tuple[int, BatchPlan]] = []
            for k, v in enumerate(variants):
                base = PerfRecord(target=target, batch=batch, model_digest=v.digest, model=v.name,
                                  warmup=measure.warmup, source="measured")
                try:
                    plan = plan_batch(v.model, batch, input_shapes=input_shapes, reshape=reshape)
                    if plan.reshaped_from is None:
                        if k not in sources:
                            sources[k] = model_source(v.model, tmpdir)
                        source = sources[k]
                    else:
                        source = model_source(plan.model, tmpdir)
                    feed = random_feed(model_inputs(plan.model), plan.shapes, seed)
                except ToolNotFoundError:
                    raise
                except BatchRefused as exc:
                    base.error, base.extra["refused"] = str(exc), True
                    results[k].append(base)
                    continue
                except Exception as exc:  # MemoryError for a huge feed, a pass bug: a row, not a crash
                    base.error = first_line(exc)
                    results[k].append(base)
                    continue
                jobs.append(Job(source=source, options=v.options, feed=feed))
                slots.append((k, plan))
            try:
                measured = runner(jobs, measure, on_progress) if jobs else []
            except ToolNotFoundError:
                raise
            except Exception as exc:  # a runner that gave up on the whole batch: every job's row says why
                measured = [PerfRecord(target=target, batch=batch, warmup=measure.warmup, error=first_line(exc))
                            for _ in jobs]
            for (k, plan), rec in zip(slots, measured, strict=True):
                v = variants[k]
                rec.target, rec.batch = target, batch
                rec.model_digest = rec.model_digest or v.digest
                rec.model = rec.model or v.name
                rec.extra["input_shapes"] = {n: list(s) for n, s in plan.shapes.items()}
                if plan.reshaped_from is not None:
                    rec.extra["reshaped_from"] = plan.reshaped_from
                    rec.extra["ran_digest"] = model_digest(plan.model)
                if plan.notes:
                    rec.extra["notes"] = list(plan.notes)
                    hazards = [n for n in plan.notes if "constant target shape" in n]
                    if rec.error and hazards:
                        rec.error = f"{rec.error} (after re-shaping: {hazards[0]})"
                results[k].append(rec)
    return results


def sweep_one(model: onnx.ModelProto, runner: Runner, *, target: str, batches: Sequence[int],
              measure: Measure, options: Any = None, digest: str | None = None, name: str | None = None,
              **kwargs: Any) -> list[PerfRecord]:
    """:func:`sweep` for a single model: its records, one per batch size."""
    return sweep([Variant(model=model, options=options, digest=digest, name=name)], runner, target=target,
                 batches=batches, measure=measure, **kwargs)[0]


def parse_batches(text: str | Sequence[int]) -> list[int]:
    """``"1,4,8"`` → [1, 4, 8]; positive, no duplicates, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[int] = []
    for item in items:
        s = str(item).strip()
        if not s:
            continue
        if not s.isdigit() or int(s) <= 0:
            raise UsageError(f"bad batch size {s!r}: expected positive integers such as 1,4,8,16,32")
        if int(s) in out:
            raise UsageError(f"batch size {s} given twice")
        out.append(int(s))
    if not out:
        raise UsageError("no batch sizes given (e.g. --batch 1,4,8,16,32)")
    return out
