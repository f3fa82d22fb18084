"""The Ascend targets: ``atc`` (compile, and tune with AOE or ATC auto_tune) and ``ais-bench`` (measure an om).

Both implement :class:`surgery.targets.Target`: the verbs hand them a typed request and get
back records, the plan that ran and each step's result. A zoo model is exported with its
zoo options and its recipe's passes (:func:`surgery.targets.resolve_target_model`); tools
are checked before the export (:func:`surgery.tools.plan.plan_and_run`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from surgery.errors import ModelLoadError, UsageError
from surgery.modelref import NO_ZOO, Zoo
from surgery.pass_infra import Pass
from surgery.records import PerfRecord
from surgery.targets.base import BENCH, COMPILE, TUNE, Events, Outcome, Request, Target
from surgery.targets.model import TargetModel, file_stem, resolve_target_model
from surgery.targets.plan import Plan

from ..plan import StepResult, check_requirements, execute, plan_and_run
from ..runner import ToolOutputError
from . import ais_bench as ais
from . import amct as amct_tool
from . import aoe_flow
from . import atc as atc_tool
from . import env as ascend_env
from .benchmark import batch_from_name

METHODS = aoe_flow.METHODS


def parse_job_types(text: str | Sequence[int] | None, default: Sequence[int] = (1, 2)) -> tuple[int, ...]:
    """``"1,2"`` (or integers) → (1, 2); None → ``default``.

    Raises:
        UsageError: anything but 1 and/or 2, or one given twice.
    """
    if text is None:
        return tuple(default)
    items = str(text).split(",") if isinstance(text, str) else [str(t) for t in text]
    out: list[int] = []
    for item in items:
        item = item.strip()
        if item not in ("1", "2"):
            raise UsageError(f"--job-type takes 1 (subgraph), 2 (operator) or 1,2; got {text!r}")
        if int(item) in out:
            raise UsageError(f"--job-type {item} given twice")
        out.append(int(item))
    return tuple(out)


def parse_atc_options(pairs: Sequence[str]) -> dict[str, str]:
    """``--atc-option KEY=VALUE`` pairs; the options compile sets itself are refused."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UsageError(f"--atc-option {pair!r} is not KEY=VALUE (e.g. precision_mode=force_fp16)")
        if key in ("model", "output", "soc_version", "input_shape", "framework"):
            raise UsageError(f"--atc-option {key} is set by surgery compile itself")
        out[key] = value
    return out


def workdir_for(request: Request, prefix: str) -> Path:
    return Path(request.workdir) if request.workdir else Path(f"{prefix}-{request.model.stem}")


def _soc(request: Request, model: TargetModel, plan: Plan) -> str:
    given = request.get("soc")
    recipe_soc = model.settings("atc").get("soc_version")
    soc = str(given or recipe_soc or atc_tool.DEFAULT_SOC)
    if not given and not recipe_soc:
        plan.notes.append(f"soc {soc} by default: give --soc (npu-smi info shows the chip)")
    if not soc.startswith("Ascend") or not soc[6:].strip():
        raise UsageError(f"--soc {soc!r} is not an Ascend chip name such as Ascend310P3 (npu-smi info shows it)")
    return soc


class AtcTarget(Target):
    """CANN's ATC on an Ascend host: one .om per batch size; tuning with AOE or ATC auto_tune."""

    name = "atc"
    summary = "Ascend: ATC compiles one .om per batch; AOE / auto_tune tune; ais_bench measures"
    honours: ClassVar[Mapping[str, frozenset[str]]] = {
        COMPILE: frozenset({"soc", "atc_options", "bank", "workdir", "timeout", "int8", "calib", "calib_samples"}),
        TUNE: frozenset({"method", "job_type", "soc", "loop", "device", "bank_root", "workdir", "timeout"}),
    }

    def __init__(self, *, zoo: Zoo = NO_ZOO, registry: Mapping[str, type[Pass]] | None = None):
        self.zoo, self.registry = zoo, registry

    def require(self, verb: str) -> None:
        """atc (and aoe to tune) must be installed: said in one line before an export or a pass runs."""
        from surgery.targets.plan import Step

        tools = ["atc", *(["aoe"] if verb == TUNE else [])]
        check_requirements(Plan(title=verb, steps=[Step((tool,), tool, tool) for tool in tools]))

    def _model(self, request: Request, workdir: Path, dry_run: bool) -> TargetModel:
        return resolve_target_model(request.model, zoo=self.zoo, registry=self.registry, workdir=workdir,
                                    batches=request.batches, input_shapes=request.input_shapes, dry_run=dry_run)

    # -- compile

    def _compile_plan(self, request: Request, model: TargetModel, out_dir: Path) -> Plan:
        settings = {**model.settings("atc"), **parse_atc_options(request.get("atc_options", ()))}
        bank = request.get("bank")
        plan = Plan(title="")
        soc = _soc(request, model, plan)
        plan.title = f"compile {model.name} with ATC for {soc}, batch {', '.join(map(str, model.batches))}"
        plan.steps.extend(model.prelude)
        plan.notes[:0] = model.notes
        if bank and not Path(bank).is_dir():  # a real run refuses it; a plan may be for another host
            plan.notes.append(f"--bank {bank} is not a folder on this machine: it must be one on the NPU host "
                              "(a TUNE_BANK_PATH that AOE or auto_tune filled), or atc ignores it")
        env = (("TUNE_BANK_PATH", str(bank)),) if bank else ()
        source = str(model.onnx)
        if request.get("int8", False):  # AMCT calibration first; ATC compiles its deploy model
            int8 = amct_tool.calibration_step(model, out_dir, data=request.get("calib"),
                                              samples=request.get("calib_samples", amct_tool.DEFAULT_SAMPLES))
            plan.add(int8.step)
            plan.notes.extend(int8.notes)
            source = int8.options.deploy_model
        elif request.get("calib") is not None or request.get("calib_samples") is not None:
            raise UsageError("--calib and --calib-samples are for --int8 (AMCT calibration)")
        for batch in model.batches:
            options = atc_tool.atc_options(source, str(out_dir / f"{model.name}_bs{batch}"), soc, settings,
                                           input_shape=model.shapes[batch])
            plan.add(atc_tool.step(options, f"compile {model.name} bs{batch} → {options.om_path}", batch=batch,
                                   group=f"bs{batch}", env=env))
        return plan

    def _check_compile(self, request: Request, *, dry_run: bool = False) -> Path:
        self.check(COMPILE, request)
        bank = request.get("bank")
        if bank and not dry_run and not Path(bank).is_dir():  # a plan may name a bank on the NPU host
            raise UsageError(f"--bank {bank} is not a folder (a TUNE_BANK_PATH that AOE or auto_tune filled)")
        return workdir_for(request, "atc")

    def plan(self, verb: str, request: Request) -> Plan:
        if verb == COMPILE:
            out_dir = self._check_compile(request, dry_run=True)
            return self._compile_plan(request, self._model(request, out_dir, True), out_dir)
        if verb == TUNE:
            self.check(TUNE, request)
            work = workdir_for(request, "ascend")
            return self._tune_plan(request, self._model(request, work, True), work)
        return super().plan(verb, request)

    def compile(self, request: Request, events: Events) -> Outcome:
        """Build one om per batch; ``Outcome.detail`` lists the builds (om, ok, seconds, warnings, E-code)."""
        out_dir = self._check_compile(request)
        plan, model, results = plan_and_run(
            lambda m: self._compile_plan(request, m, out_dir), self._model(request, out_dir, True),
            lambda: self._model(request, out_dir, False), log_dir=out_dir / "logs", timeout=request.timeout,
            on_step=events.on_step)
        builds = []
        for result in results:
            if result.step.info.kind != "atc":
                continue
            entry: dict[str, Any] = {"batch": result.step.info.batch, "om": result.step.info.om, **result.to_dict()}
            if result.ok and result.run is not None:
                entry["warnings"] = atc_tool.warnings(result.run.output)
            builds.append(entry)
        soc = next((a.split("=", 1)[1] for a in plan.steps[-1].argv if a.startswith("--soc_version=")), None) \
            if plan.steps else None
        tools = {"atc": {"cann_version": ascend_env.cann_version(), "soc_version": soc, "bank": request.get("bank")}}
        return Outcome(tools=tools, model=model, plan=plan, steps=results, detail=builds)

    # -- tune

    def _tune_config(self, request: Request, model: TargetModel, work: Path, plan: Plan) -> aoe_flow.TuneConfig:
        method = request.get("method", "aoe")
        if method == "auto_tune" and request.get("job_type") is not None:
            raise UsageError("--job-type is an AOE option; --auto-tune has none")
        aoe_settings = model.settings("aoe")
        recipe_jobs = aoe_settings.get("job_types", aoe_settings.get("job_type"))
        default_jobs = parse_job_types(recipe_jobs if not isinstance(recipe_jobs, int) else [recipe_jobs]) \
            if recipe_jobs is not None else (1, 2)
        return aoe_flow.TuneConfig(
            onnx=str(model.onnx), name=model.name, soc_version=_soc(request, model, plan), input_shapes=model.shapes,
            batches=model.batches, method=method, job_types=parse_job_types(request.get("job_type"), default_jobs),
            workdir=str(work), bank_root=request.get("bank_root"), atc=model.settings("atc"),
            aoe={k: v for k, v in aoe_settings.items() if k not in ("job_type", "job_types")},
            onnx_digest=model.digest, cann_version=ascend_env.cann_version(), loop=request.get("loop", 100),
            device=request.get("device", 0))

    def _tune_plan(self, request: Request, model: TargetModel, work: Path) -> Plan:
        notes: Plan = Plan(title="")
        config = self._tune_config(request, model, work, notes)
        plan = aoe_flow.build_plan(config, prelude=model.prelude)
        plan.notes[:0] = [*model.notes, *notes.notes]
        return plan

    def tune(self, request: Request, events: Events) -> Outcome:
        """Untuned vs tuned oms per batch; ``Outcome.detail`` is the :class:`aoe_flow.TuneReport`."""
        self.check(TUNE, request)
        work = workdir_for(request, "ascend")
        plan, model, results = plan_and_run(
            lambda m: self._tune_plan(request, m, work), self._model(request, work, True),
            lambda: self._model(request, work, False), log_dir=work / "logs", timeout=request.timeout,
            on_step=events.on_step)
        config = self._tune_config(request, model, work, Plan(title=""))
        report = aoe_flow.collect(config, plan, results)
        tools = {"cann_version": config.cann_version, "soc_version": config.soc_version, "method": config.method,
                 "job_types": list(config.job_types) if config.method == "aoe" else []}
        return Outcome(records=report.perf, tools=tools, model=model, plan=plan, steps=results, detail=report)


class AisBenchTarget(Target):
    """ais_bench on an Ascend host: pure-inference timing of one compiled .om."""

    name = "ais-bench"
    summary = "Ascend: ais_bench measures a compiled .om (one batch size)"
    honours: ClassVar[Mapping[str, frozenset[str]]] = {
        BENCH: frozenset({"loop", "device", "warmup", "iterations", "workdir", "timeout"})}

    def _options(self, request: Request) -> tuple[ais.AisBenchOptions, Path]:
        self.check(BENCH, request)
        om = request.model.arg
        if not om.endswith(".om"):
            raise UsageError(f"ais-bench measures a compiled .om, got {om}: compile it first "
                             f"(surgery compile MODEL --soc ...)")
        if request.model.zoo_options.given():
            raise UsageError(f"{request.model.zoo_options.given()[0]} applies to zoo models; {om} is compiled")
        batches = request.batches or ()
        if len(batches) > 1:
            raise UsageError("an om has one batch size; give one --batch (or compile one om per batch)")
        work = workdir_for(request, "ais-bench")
        batch = batches[0] if batches else batch_from_name(om)
        loop = request.get("loop") or request.get("iterations") or 100
        options = ais.AisBenchOptions(model=om, batchsize=batch, loop=loop, warmup_count=request.get("warmup"),
                                      device=request.get("device", 0), output=str(work / "ais_bench"),
                                      output_dirname=file_stem(Path(om)))
        return options, work

    def _plan(self, options: ais.AisBenchOptions) -> Plan:
        plan = Plan(title=f"measure {options.model} with ais_bench")
        plan.add(ais.step(options, f"ais_bench pure inference, {options.loop} loops", batch=options.batchsize,
                          group="om"))
        if options.batchsize is None:
            plan.notes.append("batch not given nor in the om name: ais_bench detects it; the record takes the batch "
                              "from its throughput")
        return plan

    def plan(self, verb: str, request: Request) -> Plan:
        if verb != BENCH:
            return super().plan(verb, request)
        return self._plan(self._options(request)[0])

    def bench(self, request: Request, events: Events) -> Outcome:
        options, work = self._options(request)
        if not Path(options.model).is_file():
            raise ModelLoadError(f"om not found: {options.model}")
        plan = self._plan(options)
        results = execute(plan, log_dir=work / "logs", timeout=request.timeout, on_step=events.on_step)
        record = _ais_record(results[0], options)
        model = TargetModel(name=file_stem(Path(options.model)), onnx=Path(options.model),
                            batches=(options.batchsize or record.batch,), shapes={})
        return Outcome(records=[record], tools={"cann_version": ascend_env.cann_version()}, model=model, plan=plan,
                       steps=results)


def _ais_record(result: StepResult, options: ais.AisBenchOptions) -> PerfRecord:
    if not result.ok or result.run is None:
        return PerfRecord(target=ais.TARGET, batch=options.batchsize or 1, model=options.model,
                          error=str(result.error or result.skipped))
    try:
        record = ais.read_record(result.run, options)
    except ToolOutputError as exc:
        return PerfRecord(target=ais.TARGET, batch=options.batchsize or 1, model=options.model, error=str(exc))
    record.target_version = ascend_env.cann_version()
    return record
