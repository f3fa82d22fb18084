"""The AOE flow: tune one ONNX model for an Ascend chip over batch sizes (AOE or ATC auto_tune), then measure.

Per batch size the plan is the guides' flow, made repeatable:

1. ``atc`` → the untuned om (the baseline);
2. ``aoe --job_type=1`` and/or ``2`` with ``TUNE_BANK_PATH`` set to a bank of this
   experiment alone (AOE ``--job_type 1`` subgraph, ``2`` operator); or, for
   ``auto_tune`` (CANN before 6.0.1), ``atc --auto_tune_mode=RL,GA`` with the bank;
3. ``atc`` again with the same ``TUNE_BANK_PATH`` → the tuned om (AOE's documented
   "tune once, convert many" step);
4. ``ais_bench`` on both oms → the perf table, tuned against untuned.

Banks are content-addressed: the key is (ONNX digest, batch, soc, job types, CANN
version, options). A bank whose manifest carries the key is reused and AOE is skipped:
tuning takes hours. Each record carries the bank's provenance (path, digest, soc, CANN
version), because the ICNet guide found tuned oms *slower* on another 310P machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.atomic import write_text_atomic
from surgery.errors import UsageError
from surgery.records import PerfRecord, now_iso
from surgery.targets.plan import Plan, Step

from ..plan import Internal, StepResult, execute
from ..runner import ToolOutputError
from . import ais_bench as ais_tool
from . import aoe as aoe_tool
from . import atc as atc_tool
from .ais_bench import AisBenchOptions
from .env import auto_tune_supported

METHODS = ("aoe", "auto_tune")
MANIFEST = "surgery-bank.json"
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TuneConfig:
    """One tuning experiment over batch sizes.

    Attributes:
        onnx: the ONNX file to tune (after the recipe's passes).
        name: the prefix of every file written (``icnet`` → ``icnet_bs1.om``).
        soc_version: the chip, e.g. ``Ascend310P3``.
        input_shapes: batch → ``{input: dims}`` for ATC/AOE ``--input_shape``.
        batches: the batch sizes.
        method: ``aoe`` or ``auto_tune``.
        job_types: AOE job types in order (1 subgraph, 2 operator).
        workdir: where oms, logs, AOE workspaces and (by default) banks go.
        bank_root: where banks live (``<workdir>/banks``): share it between workdirs to reuse tuning.
        atc: extra ATC options (a recipe's ``atc`` dict: out_nodes, log, op_select_implmode...).
        aoe: extra AOE options (a recipe's ``aoe`` dict).
        onnx_digest: sha256 of the ONNX; None when it does not exist yet (a dry run before export).
        cann_version: the CANN that tunes (part of the bank key).
        loop, warmup, device: ais_bench settings.
        python: the interpreter with ais_bench.
    """

    onnx: str
    name: str
    soc_version: str
    input_shapes: Mapping[int, Mapping[str, Sequence[int]]]
    batches: tuple[int, ...]
    method: str = "aoe"
    job_types: tuple[int, ...] = (1, 2)
    workdir: str = "."
    bank_root: str | None = None
    atc: Mapping[str, Any] = field(default_factory=dict)
    aoe: Mapping[str, Any] = field(default_factory=dict)
    onnx_digest: str | None = None
    cann_version: str | None = None
    loop: int = 100
    warmup: int | None = None
    device: int | None = 0
    python: str = "python3"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"tuning method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.batches:
            raise UsageError("no batch sizes to tune")
        missing = [b for b in self.batches if b not in self.input_shapes]
        if missing:
            raise UsageError(f"no input shapes for batch {', '.join(map(str, missing))}")
        if self.method == "aoe":
            if not self.job_types or any(j not in aoe_tool.JOB_TYPES for j in self.job_types):
                raise UsageError(f"AOE job types must be 1 and/or 2, got {self.job_types!r}")
            if len(set(self.job_types)) != len(self.job_types):
                raise UsageError(f"AOE job type given twice: {self.job_types!r}")
        if self.method == "auto_tune" and auto_tune_supported(self.cann_version) is False:
            raise UsageError(f"ATC --auto_tune_mode was removed in CANN 6.0.1; this is CANN {self.cann_version}: "
                             f"use --aoe")

    @property
    def banks(self) -> Path:
        return Path(self.bank_root) if self.bank_root else Path(self.workdir) / "banks"


def bank_key(config: TuneConfig, batch: int) -> dict[str, Any]:
    """What a bank depends on: the model bytes, batch, chip, tuning jobs, CANN and options."""
    return {"onnx_digest": config.onnx_digest, "batch": batch, "soc_version": config.soc_version,
            "method": config.method, "job_types": list(config.job_types) if config.method == "aoe" else [],
            "cann_version": config.cann_version, "input_shape": atc_tool.format_input_shape(
                config.input_shapes[batch]),
            "atc": {k: config.atc[k] for k in sorted(config.atc)},
            "aoe": {k: config.aoe[k] for k in sorted(config.aoe)}}


def bank_id(key: Mapping[str, Any]) -> str:
    """The sha256 of a bank key (canonical JSON)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def bank_dir(config: TuneConfig, batch: int) -> Path:
    """This experiment's bank: ``<banks>/<name>-bs<b>-<soc>-<jobs>-<id12>`` (``-new`` before export)."""
    jobs = "job" + "+".join(map(str, config.job_types)) if config.method == "aoe" else "autotune"
    suffix = bank_id(bank_key(config, batch))[:12] if config.onnx_digest else "new"
    return config.banks / f"{config.name}-bs{batch}-{config.soc_version}-{jobs}-{suffix}"


def cached_bank(config: TuneConfig, batch: int) -> dict[str, Any] | None:
    """The manifest of a finished bank for exactly this experiment, or None."""
    if not config.onnx_digest:
        return None
    path = bank_dir(config, batch) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("id") != bank_id(bank_key(config, batch)) or not manifest.get("complete"):
        return None
    return manifest


def bank_digest(path: str | os.PathLike) -> str | None:
    """sha256 over a bank's files (relative names and bytes), the manifest excluded; None if empty."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST) if root.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256()
    for file in files:
        h.update(str(file.relative_to(root)).encode() + b"\0")
        h.update(file.read_bytes())
    return h.hexdigest()


def _rel(path: Path | str, cwd: Path | str) -> str:
    return os.path.relpath(path, cwd)


def build_plan(config: TuneConfig, *, prelude: Sequence[Step] = ()) -> Plan:
    """The tuning plan: per batch, untuned atc, tuning, tuned atc, two ais_bench runs.

    Args:
        config: the experiment.
        prelude: steps run first (e.g. exporting the zoo model).
    """
    label = "AOE " + "+".join(f"job_type {j}" for j in config.job_types) if config.method == "aoe" \
        else "ATC auto_tune RL,GA"
    plan = Plan(title=f"tune {config.name} for {config.soc_version} with {label}, batch "
                      f"{', '.join(map(str, config.batches))}")
    plan.steps.extend(prelude)
    if not config.onnx_digest:
        plan.notes.append(f"{config.onnx} does not exist yet: bank folders end in '-new' instead of the model "
                          f"digest, so this plan never reuses a cached bank")
    if config.cann_version:
        plan.notes.append(f"CANN {config.cann_version}")
    for batch in config.batches:
        plan.steps.extend(batch_steps(config, batch, plan))
    return plan


def batch_steps(config: TuneConfig, batch: int, plan: Plan | None = None) -> list[Step]:
    """The steps of one batch size (see :func:`build_plan`)."""
    work = Path(config.workdir)
    group = f"bs{batch}"
    shapes = config.input_shapes[batch]
    bank = bank_dir(config, batch)
    cached = cached_bank(config, batch)
    steps: list[Step] = []
    untuned = atc_tool.atc_options(config.onnx, str(work / "untuned" / f"{config.name}_bs{batch}"),
                                   config.soc_version, config.atc, input_shape=shapes)
    steps.append(atc_tool.step(untuned, f"compile {config.name} bs{batch}, untuned", batch=batch, build="untuned",
                               group=group))
    skip = None
    if cached is not None:
        skip = f"bank {bank} already tuned for this model, batch, soc, jobs and CANN ({cached.get('finished')})"
        if plan is not None:
            plan.notes.append(f"bs{batch}: reusing tuned bank {bank}")
    tuned_output = str(work / "tuned" / f"{config.name}_bs{batch}")
    if config.method == "aoe":
        run_dir = work / "aoe" / bank.name
        for job in config.job_types:
            options = aoe_tool.aoe_options(
                _rel(config.onnx, run_dir), job, config.aoe, input_shape=shapes,
                output=f"{config.name}_bs{batch}_aoe_job{job}")
            what = f"AOE {aoe_tool.JOB_TYPES[job]} tuning, bs{batch}, into an isolated bank"
            steps.append(aoe_tool.step(options, what, bank=_rel(bank, run_dir), bank_dir=bank, cwd=str(run_dir),
                                       batch=batch, group=group, skip=skip))
        tuned = atc_tool.atc_options(config.onnx, tuned_output, config.soc_version, config.atc, input_shape=shapes)
        build, what, makedirs = "aoe", f"compile {config.name} bs{batch} with the tuned bank", ()
    elif skip:
        # the bank is there: compile without --auto_tune_mode, as after AOE, to reuse it
        tuned = atc_tool.atc_options(config.onnx, tuned_output, config.soc_version, config.atc, input_shape=shapes)
        build, what, makedirs = "auto_tune", f"compile {config.name} bs{batch} with the cached auto_tune bank", ()
    else:
        tuned = atc_tool.atc_options(config.onnx, tuned_output, config.soc_version, config.atc, input_shape=shapes,
                                     auto_tune_mode="RL,GA")
        build = "auto_tune"
        what = f"compile {config.name} bs{batch} with ATC auto_tune RL,GA into an isolated bank"
        makedirs = (str(bank),)
    steps.append(atc_tool.step(tuned, what, batch=batch, build=build, group=group,
                               env=(("TUNE_BANK_PATH", str(bank)),), makedirs=makedirs))
    for label, om in (("untuned", untuned.om_path), (build, tuned.om_path)):
        bench = ais_bench_options(config, om, batch, label)
        steps.append(ais_tool.step(bench, f"measure the {label} om, bs{batch} (ais_bench, {config.loop} loops)",
                                   batch=batch, build=label, group=group))
    return steps


def ais_bench_options(config: TuneConfig, om: str, batch: int, label: str) -> AisBenchOptions:
    """The ais_bench run measuring one om; its summary lands in ``<workdir>/ais_bench/<label>_bs<b>_summary.json``."""
    return AisBenchOptions(model=om, batchsize=batch, loop=config.loop, warmup_count=config.warmup,
                           device=config.device, output=str(Path(config.workdir) / "ais_bench"),
                           output_dirname=f"{label}_bs{batch}", python=config.python)


@dataclass
class TuneReport:
    """The outcome: perf rows (untuned and tuned per batch), bank provenance, step results."""

    perf: list[PerfRecord]
    banks: list[dict[str, Any]]
    steps: list[StepResult]
    plan: Plan

    def rows(self) -> list[dict[str, Any]]:
        """One row per batch: untuned and tuned throughput and their ratio (None where missing)."""
        out = []
        for batch in sorted({r.batch for r in self.perf}):
            base = next((r for r in self.perf if r.batch == batch and r.settings.get("build") == "untuned"), None)
            tuned = next((r for r in self.perf if r.batch == batch and r.settings.get("build") != "untuned"), None)
            ratio = (tuned.throughput / base.throughput
                     if base and tuned and base.throughput and tuned.throughput else None)
            out.append({"batch": batch, "untuned": base.throughput if base else None,
                        "tuned": tuned.throughput if tuned else None, "ratio": ratio,
                        "untuned_error": base.error if base else None, "tuned_error": tuned.error if tuned else None})
        return out


def run_tune(config: TuneConfig, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
             prelude: Sequence[Step] = (), internal: Mapping[str, Internal] | None = None,
             on_step: Callable[[int, Step], None] | None = None) -> TuneReport:
    """Build and execute the tuning plan; a failed batch becomes rows with ``error`` and the others go on.

    Raises:
        ToolNotFoundError: atc, aoe or ais_bench is missing (before anything runs).
    """
    plan = build_plan(config, prelude=prelude)
    results = execute(plan, log_dir=Path(config.workdir) / "logs", timeout=timeout, env=env, internal=internal,
                      on_step=on_step)
    return collect(config, plan, results)


def collect(config: TuneConfig, plan: Plan, results: Sequence[StepResult]) -> TuneReport:
    """Turn step results into perf rows and bank provenance; write manifests of freshly tuned banks."""
    perf: list[PerfRecord] = []
    banks: list[dict[str, Any]] = []
    for batch in config.batches:
        mine = [r for r in results if r.step.info.batch == batch]
        failure = next((r for r in mine if r.error is not None), None)
        tuning = [r for r in mine if r.step.info.kind == "aoe"
                  or (r.step.info.kind == "atc" and r.step.info.build == "auto_tune")]
        provenance = _provenance(config, batch, tuning)
        banks.append(provenance)
        for r in (r for r in mine if r.step.info.kind == "ais_bench"):
            build = r.step.info.build or "untuned"
            settings = {"build": build, "soc_version": config.soc_version, "device": config.device,
                        "loop": config.loop}
            if build != "untuned":
                settings["bank"] = {k: provenance[k] for k in ("path", "digest", "soc_version", "cann_version",
                                                                "job_types", "id", "cached")}
            if r.ok and r.run is not None:
                try:
                    record = ais_tool.read_record(r.run, ais_bench_options(config, r.step.info.om or "", batch, build))
                except ToolOutputError as exc:
                    record = PerfRecord(target="ais-bench", batch=batch, error=str(exc))
            else:
                why = r.error or (failure.error if failure else None)
                record = PerfRecord(target="ais-bench", batch=batch,
                                    error=str(why) if why else (r.skipped or "not run"))
            record.model = r.step.info.om
            record.target_version = config.cann_version
            record.settings.update(settings)
            perf.append(record)
    return TuneReport(perf=perf, banks=banks, steps=list(results), plan=plan)


def _provenance(config: TuneConfig, batch: int, tuning: Sequence[StepResult]) -> dict[str, Any]:
    """Where the tuned om's bank came from; writes the manifest once every tuning job of the batch succeeded."""
    path = bank_dir(config, batch)
    key = bank_key(config, batch)
    ident = bank_id(key) if config.onnx_digest else None
    cached = cached_bank(config, batch)
    improvements: list[dict[str, Any]] = []
    for r in tuning:
        if r.run is not None:
            improvements += [{"task": i.task, "percent": i.percent} for i in aoe_tool.parse_aoe_output(r.run.output)]
    for result_file in aoe_tool.find_result_files(Path(config.workdir) / "aoe" / path.name):
        try:
            improvements += [{"job": a.job, "percent": a.improvement, "baseline_ms": a.baseline_ms,
                              "result_ms": a.result_ms, "file": a.source}
                             for a in aoe_tool.parse_aoe_result_json(result_file)]
        except ToolOutputError:
            continue
    complete = bool(tuning) and all(r.ok for r in tuning)
    if cached is not None:
        improvements = improvements or list(cached.get("improvements", []))
    provenance = {"batch": batch, "path": str(path), "digest": bank_digest(path), "soc_version": config.soc_version,
                  "cann_version": config.cann_version, "method": config.method,
                  "job_types": list(config.job_types) if config.method == "aoe" else [], "id": ident,
                  "onnx_digest": config.onnx_digest, "cached": cached is not None, "improvements": improvements,
                  "host": os.uname().nodename if hasattr(os, "uname") else None,
                  "note": "a bank tuned on one machine may not speed up another (ICNet guide)"}
    if complete and ident is not None and cached is None:
        path.mkdir(parents=True, exist_ok=True)
        manifest = {"version": _MANIFEST_VERSION, "id": ident, "key": key, "complete": True, "finished": now_iso(),
                    "digest": provenance["digest"], "improvements": improvements, "host": provenance["host"]}
        write_text_atomic(path / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
    return provenance


