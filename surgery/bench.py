"""The batch sweep behind the in-process targets: shapes, feeds, reshaping, effective batch, failed rows.

Target-independent. A *runner* (one per target, e.g. ``surgery.tools.onnxruntime.run_jobs``)
measures prepared jobs; this module decides what each batch size runs:

- a model whose batch axis is dynamic runs the asked batch as is;
- a model with a static batch that differs is re-shaped by the ``reshaper`` the caller hands
  in (``fix_shapes`` from the CLI; never timed at its own batch and reported as the asked
  one), or refused when there is no reshaper or re-shaping fails;
- a batch that fails (refused, out of memory, rejected by the runtime) becomes a
  :class:`PerfRecord` with ``error`` set, and the sweep goes on.

Input shapes at each batch come from :func:`surgery.shapes.shapes_at` (one rule for every
target). Throughput always comes from the *effective* batch: the leading dimension of the
inputs the model actually received.

Several models given together are measured together at each batch: same inputs, sessions
built before timing, interleaved rounds (see :mod:`surgery.targets.measure`). Their records
of one batch share a pairing id, which is how ``surgery diff`` knows their rounds line up.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from surgery.errors import SurgeryError, ToolNotFoundError, UsageError
from surgery.graph import is_large, model_digest, runtime_source
from surgery.parity import random_feed
from surgery.records import PerfRecord
from surgery.shapes import InputSpec, Shape, is_static, model_inputs, shapes_at
from surgery.targets.measure import Job, Measure, ProgressFn, Runner, describe_error

# (model, batch) -> (model re-shaped to that static batch, notes); raises SurgeryError when it cannot
Reshaper = Callable[[onnx.ModelProto, int], tuple[onnx.ModelProto, list[str]]]


class BatchRefused(SurgeryError):
    """A batch size this model cannot run as asked (static batch and no re-shaping)."""


@dataclass(frozen=True)
class BenchModel:
    """A model (and target options) to sweep; several are measured interleaved."""

    model: onnx.ModelProto
    options: Any = None
    label: str = ""
    digest: str | None = None
    name: str | None = None  # a path or zoo name for the record


@dataclass
class BatchPlan:
    """What one model runs at one batch size."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    reshaped_from: int | None = None
    notes: list[str] = field(default_factory=list)


def batch_axis_dims(specs: Sequence[InputSpec]) -> dict[str, int | str]:
    """Axis 0 of each input with a rank (a static size, or a symbol when dynamic)."""
    return {s.name: s.shape[0] for s in specs if s.shape}


def static_batch(model: onnx.ModelProto) -> int | None:
    """The model's static batch if every input fixes axis 0 to one same size, else None."""
    dims = set(batch_axis_dims(model_inputs(model)).values())
    if len(dims) == 1 and is_static(d := next(iter(dims))):
        return int(d)
    return None


def plan_batch(model: onnx.ModelProto, batch: int, *, input_shapes: dict[str, Shape] | None = None,
               reshaper: Reshaper | None = None) -> BatchPlan:
    """Decide what ``model`` runs at ``batch``: as is, re-shaped by ``reshaper``, or refused.

    Raises:
        BatchRefused: static batch and no reshaper, no batch axis, or re-shaping failed.
        UsageError: shapes that cannot be resolved (see :func:`surgery.shapes.shapes_at`).
    """
    specs = model_inputs(model)
    axis0 = batch_axis_dims(specs)
    if not axis0:
        if batch != 1:
            raise BatchRefused(f"batch {batch} refused: the model's inputs have no batch axis (all scalars)")
        return BatchPlan(model=model, shapes=shapes_at(specs, 1, input_shapes))
    statics = {int(d) for d in axis0.values() if is_static(d)}
    if statics <= {batch}:  # dynamic, or already static at this batch
        return BatchPlan(model=model, shapes=shapes_at(specs, batch, input_shapes))
    fixed = ", ".join(f"{n}:{d}" for n, d in axis0.items() if is_static(d))
    current = min(statics)
    if reshaper is None:
        raise BatchRefused(f"batch {batch} refused: the model has a static batch ({fixed}) and re-shaping is "
                           "off (--no-reshape); re-export it with a dynamic batch or drop --no-reshape")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        reshaped, hazards = reshaper(copy, batch)
    except SurgeryError as exc:
        raise BatchRefused(f"batch {batch} refused: the model has a static batch ({fixed}) and fix_shapes "
                           f"cannot re-shape it: {exc}") from None
    notes = [f"re-shaped with fix_shapes batch={batch} (static batch {current})", *hazards]
    return BatchPlan(model=reshaped, shapes=shapes_at(model_inputs(reshaped), batch, input_shapes),
                     reshaped_from=current, notes=notes)


def model_source(model: onnx.ModelProto, tmpdir: str | None = None) -> bytes | str:
    """Bytes for a runtime to load; a file in ``tmpdir`` for models above protobuf's 2 GB limit."""
    if not is_large(model):
        return model.SerializeToString()
    if tmpdir is None:
        raise UsageError("model above 2 GB: a temporary folder is needed to benchmark it")
    return runtime_source(model, tmpdir)  # onnx.save_model would strip the weights from ``model`` itself


def sweep(
    models: Sequence[BenchModel],
    runner: Runner,
    *,
    target: str,
    batches: Sequence[int],
    measure: Measure,
    input_shapes: dict[str, Shape] | None = None,
    reshaper: Reshaper | None = None,
    seed: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[list[PerfRecord]]:
    """Measure every model at every batch size; one list of records per model.

    Args:
        models: the models (and target options) to measure; with several, each batch
            measures them together through the runner (interleaved when ``measure.rounds`` > 1).
        runner: the target's measurement function.
        target: the target name written into each record.
        batches: batch sizes, in order.
        measure: warm-up, iterations or minimum time, rounds.
        input_shapes: ``--input-shapes`` (axis 0 is always the batch; see :func:`surgery.shapes.shapes_at`).
        reshaper: re-shapes a static batch (None: refuse other batch sizes).
        seed: seed of the random feed (the same feed for every model at a batch).
        on_batch: called with (index, batch) before each batch.
        on_progress: called with the fraction of the current batch done.

    Raises:
        UsageError: shapes that cannot be resolved for any batch (checked before measuring).
        ToolNotFoundError: the runner's runtime or provider is missing.
    """
    for m in models:  # bad --input-shapes is a usage error, not a failed row per batch
        shapes_at(model_inputs(m.model), 1, input_shapes)
    results: list[list[PerfRecord]] = [[] for _ in models]
    sources: dict[int, bytes | str] = {}
    group = uuid.uuid4().hex[:16]  # one id per sweep; records of one batch pair on f"{group}/{index}"
    with tempfile.TemporaryDirectory(prefix="surgery-bench-") as tmpdir:
        for index, batch in enumerate(batches):
            if on_batch is not None:
                on_batch(index, batch)
            jobs: list[Job] = []
            slots: list[tuple[int, BatchPlan]] = []
            for k, m in enumerate(models):
                base = PerfRecord(target=target, batch=batch, model_digest=m.digest, model=m.name,
                                  warmup=measure.warmup, source="measured")
                try:
                    plan = plan_batch(m.model, batch, input_shapes=input_shapes, reshaper=reshaper)
                    if plan.reshaped_from is None:
                        if k not in sources:
                            sources[k] = model_source(m.model, tmpdir)
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
                    base.error = describe_error(exc)
                    results[k].append(base)
                    continue
                jobs.append(Job(source=source, options=m.options, feed=feed))
                slots.append((k, plan))
            try:
                measured = runner(jobs, measure, on_progress) if jobs else []
            except (ToolNotFoundError, UsageError):  # a missing runtime or a setting it refuses: not a row
                raise
            except Exception as exc:  # a runner that gave up on the whole batch: every job's row says why
                measured = [PerfRecord(target=target, batch=batch, warmup=measure.warmup, error=describe_error(exc))
                            for _ in jobs]
            for (k, plan), rec in zip(slots, measured, strict=True):
                m = models[k]
                rec.target, rec.batch = target, batch
                rec.model_digest = rec.model_digest or m.digest
                rec.model = rec.model or m.name
                rec.extra["input_shapes"] = {n: list(s) for n, s in plan.shapes.items()}
                if rec.pairing is not None:
                    rec.pairing["id"] = f"{group}/{index}"
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
