"""The TensorRT target: ``trtexec``, one run per batch size, on an ONNX or a zoo model exported for it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from surgery.modelref import NO_ZOO, Zoo
from surgery.pass_infra import Pass
from surgery.records import PerfRecord
from surgery.targets.base import BENCH, Events, Outcome, Request, Target
from surgery.targets.model import TargetModel, resolve_target_model
from surgery.targets.plan import Plan

from ..plan import plan_and_run
from ..runner import ToolOutputError
from . import trtexec as trt

_ALIASES = {"saveEngine": "save_engine", "loadEngine": "load_engine", "warmUp": "warm_up", "avgRuns": "avg_runs",
            "minShapes": "min_shapes", "optShapes": "opt_shapes", "maxShapes": "max_shapes"}


def trtexec_options_for(onnx: str, shapes: Mapping[str, tuple[int, ...]] | None, settings: Mapping[str, Any],
                        **overrides: Any) -> trt.TrtexecOptions:
    """TrtexecOptions from a recipe's ``trtexec`` dict (field names or trtexec flags) plus overrides."""
    known = set(trt.TrtexecOptions.__dataclass_fields__) - {"extra", "onnx", "shapes"}
    fields: dict[str, Any] = {}
    extra: list[tuple[str, str | None]] = []
    for key, value in {**settings, **overrides}.items():
        if value is None or key in ("shapes", "onnx", "notes", "note", "device", "gpu"):
            continue
        name = _ALIASES.get(key, key.replace("-", "_"))
        if name in known:
            fields[name] = value
        else:
            extra.append((key, None if value is True else str(value)))
    return trt.TrtexecOptions(onnx=onnx, shapes=dict(shapes) if shapes else None, extra=tuple(extra), **fields)


class TrtexecTarget(Target):
    """trtexec on a GPU host: builds an engine per batch size and times it (``--fp16`` for the guides' T4 column)."""

    name = "trtexec"
    summary = "TensorRT: trtexec builds and times an engine per batch size"
    honours: ClassVar[Mapping[str, frozenset[str]]] = {
        BENCH: frozenset({"fp16", "iterations", "min_time", "workdir", "timeout"})}

    def __init__(self, *, zoo: Zoo = NO_ZOO, registry: Mapping[str, type[Pass]] | None = None):
        self.zoo, self.registry = zoo, registry

    def _workdir(self, request: Request) -> Path:
        return Path(request.workdir) if request.workdir else Path(f"trtexec-{request.model.stem}")

    def _model(self, request: Request, dry_run: bool) -> TargetModel:
        return resolve_target_model(request.model, zoo=self.zoo, registry=self.registry,
                                    workdir=self._workdir(request), batches=request.batches,
                                    input_shapes=request.input_shapes, dry_run=dry_run)

    def _plan(self, request: Request, model: TargetModel) -> tuple[Plan, list[trt.TrtexecOptions]]:
        settings = model.settings("trtexec")
        min_time = request.get("min_time")
        overrides: dict[str, Any] = {"iterations": request.get("iterations"),
                                     "duration": math.ceil(min_time) if min_time else None}
        if request.get("fp16"):
            overrides["fp16"] = True
        plan = Plan(title=f"measure {model.name} with trtexec, batch {', '.join(map(str, model.batches))}")
        plan.steps.extend(model.prelude)
        plan.notes.extend(model.notes)
        options_list = []
        for batch in model.batches:
            shapes = {k: v for k, v in model.shapes[batch].items() if k in model.dynamic}
            options = trtexec_options_for(str(model.onnx), shapes or None, settings, **overrides)
            options_list.append(options)
            plan.add(trt.step(options, f"trtexec {model.name} bs{batch}{' fp16' if options.fp16 else ''}",
                              batch=batch, group=f"bs{batch}"))
        return plan, options_list

    def plan(self, verb: str, request: Request) -> Plan:
        if verb != BENCH:
            return super().plan(verb, request)
        self.check(BENCH, request)
        return self._plan(request, self._model(request, True))[0]

    def bench(self, request: Request, events: Events) -> Outcome:
        """One record per batch size; a failed batch keeps ``error`` and the others go on."""
        self.check(BENCH, request)
        plan, model, results = plan_and_run(lambda m: self._plan(request, m)[0], self._model(request, True),
                                            lambda: self._model(request, False),
                                            log_dir=self._workdir(request) / "logs", timeout=request.timeout,
                                            on_step=events.on_step)
        options_list = self._plan(request, model)[1]
        records: list[PerfRecord] = []
        for result, options, batch in zip([r for r in results if r.step.info.kind == "trtexec"], options_list,
                                          model.batches, strict=True):
            if not result.ok or result.run is None:
                records.append(PerfRecord(target=trt.TARGET, batch=batch, model=str(model.onnx),
                                          model_digest=model.digest, error=str(result.error or result.skipped)))
                continue
            try:
                record = trt.read_record(result.run, options, batch=batch)
            except ToolOutputError as exc:
                record = PerfRecord(target=trt.TARGET, batch=batch, model=str(model.onnx), error=str(exc))
            record.model_digest = model.digest
            records.append(record)
        version = next((r.target_version for r in records if r.target_version), None)
        return Outcome(records=records, tools={"trtexec": {"version": version}}, model=model, plan=plan,
                       steps=results)
