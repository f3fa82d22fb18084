"""AOE, the Ascend Optimization Engine (successor of ATC's auto_tune): subgraph and operator tuning.

``aoe --framework=5 --model=x.onnx --job_type=1|2 ...`` tunes with the bank at
``TUNE_BANK_PATH``; ``--job_type=1`` is subgraph tuning (SGAT), ``2`` operator tuning
(OPAT). Huawei recommends 1 then 2. The supported "tune once, convert many" flow is to
re-run plain ``atc`` with the same ``TUNE_BANK_PATH`` afterwards.

AOE prints ``<task> process finished. Performance improved by xx%`` and/or
``Aoe process finished``, and writes ``aoe_result_{opat,sgat}_<ts>_pid<id>.json``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.targets.plan import Step, StepInfo

from ..runner import ToolOutputError, ToolRun, read_output_json
from .atc import IMPLMODES, LOG_LEVELS, PRECISION_MODES, Shapes, format_input_shape

JOB_TYPES = {1: "subgraph (SGAT)", 2: "operator (OPAT)"}
SUCCESS_LINE = re.compile(r"(?i)aoe process finished|process finished\. performance improved by")
# No failure line: AOE logs per-op "tuning failed" warnings in runs that succeed; exit code and
# the finish line decide.
FAILURE_LINE = None
_IMPROVED = re.compile(r"(?:\b(\w+) process finished\.\s*)?Performance improved by\s*(-?\d+(?:\.\d+)?)\s*%",
                       re.IGNORECASE)


@dataclass(frozen=True)
class AoeOptions:
    """One AOE tuning job. ``None`` leaves an option out.

    Attributes:
        model: the ONNX file.
        job_type: 1 subgraph tuning, 2 operator tuning.
        output: the tuned om path without ``.om`` (the ICNet guide gives one).
        input_shape: ``{name: dims}`` or ``name:1,3,224,224``.
        input_format, out_nodes, log, precision_mode, op_select_implmode, soc_version: as for ATC.
        reload: resume an interrupted subgraph tune (same directory).
        extra: other ``--key=value`` pairs.
        aoe: the executable.
    """

    model: str
    job_type: int
    output: str | None = None
    input_shape: Shapes | str | None = None
    input_format: str | None = None
    out_nodes: tuple[str, ...] | None = None
    log: str | None = None
    precision_mode: str | None = None
    op_select_implmode: str | None = None
    soc_version: str | None = None
    framework: int = 5
    reload: bool = False
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    aoe: str = "aoe"

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPES:
            raise UsageError(f"AOE --job_type must be 1 (subgraph) or 2 (operator), got {self.job_type!r}")
        if self.log is not None and self.log not in LOG_LEVELS:
            raise UsageError(f"AOE --log must be one of {', '.join(LOG_LEVELS)}, got {self.log!r}")
        if self.precision_mode is not None and self.precision_mode not in PRECISION_MODES:
            raise UsageError(f"unknown AOE precision_mode {self.precision_mode!r}")
        if self.op_select_implmode is not None and self.op_select_implmode not in IMPLMODES:
            raise UsageError(f"unknown AOE op_select_implmode {self.op_select_implmode!r}")
        if self.reload and self.job_type != 1:
            raise UsageError("AOE --reload resumes subgraph tuning only (job_type 1)")

    def options(self) -> list[tuple[str, str]]:
        named: list[tuple[str, object]] = [
            ("framework", self.framework), ("model", self.model), ("job_type", self.job_type),
            ("output", self.output), ("input_format", self.input_format),
            ("input_shape", format_input_shape(self.input_shape) if self.input_shape is not None else None),
            ("out_nodes", ";".join(self.out_nodes) if self.out_nodes else None),
            ("soc_version", self.soc_version), ("log", self.log), ("precision_mode", self.precision_mode),
            ("op_select_implmode", self.op_select_implmode),
        ]
        out = [(k, str(v)) for k, v in named if v is not None]
        out += [(k, str(v)) for k, v in self.extra]
        return out

    def argv(self) -> list[str]:
        """The exact command, ``--key=value`` style (``--reload`` is a bare flag)."""
        argv = [self.aoe, *(f"--{k}={v}" for k, v in self.options())]
        if self.reload:
            argv.append("--reload")
        return argv


def aoe_options(model: str, job_type: int, settings: Mapping[str, object] | None = None,
                **overrides: object) -> AoeOptions:
    """AoeOptions from a recipe's ``aoe`` dict; keys that are not AOE options go to ``extra``.

    ``job_type``/``job_types``, ``auto_tune_mode`` and ``tune_bank_path`` describe the
    experiment, not this command, and are skipped.
    """
    known = set(AoeOptions.__dataclass_fields__) - {"extra", "model", "job_type"}
    skip = {"job_type", "job_types", "auto_tune_mode", "tune_bank_path", "notes", "note", "soc"}
    fields: dict[str, object] = {}
    extra: list[tuple[str, str]] = []
    for key, value in {**(settings or {}), **overrides}.items():
        key = key.lstrip("-").replace("-", "_")
        if value is None or key in skip:
            continue
        if key in known:
            if key == "out_nodes" and isinstance(value, str):
                value = tuple(v for v in value.split(";") if v)
            fields[key] = tuple(value) if isinstance(value, list) else value
        else:
            extra.append((key, str(value)))
    return AoeOptions(model=model, job_type=job_type, extra=tuple(extra), **fields)


@dataclass(frozen=True)
class AoeImprovement:
    """One ``Performance improved by`` line: the task (SGAT/OPAT/...) if named, and the percent."""

    task: str | None
    percent: float


def parse_aoe_output(text: str) -> list[AoeImprovement]:
    """Every ``[<task> process finished.] Performance improved by xx%`` in an AOE log, in order."""
    return [AoeImprovement(m.group(1), float(m.group(2))) for m in _IMPROVED.finditer(text)]


@dataclass(frozen=True)
class AoeResult:
    """An ``aoe_result_*.json``: one tuning job's baseline and tuned model latency.

    ``improvement`` is AOE's own ``model_performance_improvement`` in percent when it
    gives one, else ``(baseline / result - 1) * 100``.
    """

    job: str  # "OPAT" or "SGAT"
    baseline_ms: float | None
    result_ms: float | None
    improvement: float | None
    tuning_name: str | None = None
    tuning_time_s: float | None = None
    operators: tuple[dict[str, Any], ...] = ()
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "baseline_ms": self.baseline_ms, "result_ms": self.result_ms,
                "improvement_pct": self.improvement, "tuning_name": self.tuning_name,
                "tuning_time_s": self.tuning_time_s, "operators": list(self.operators), "source": self.source}

    def perf_records(self, batch: int | None = None, model: str | None = None) -> list[PerfRecord]:
        """Two rows, AOE's own baseline and tuned model latency; throughput only when ``batch`` is known."""
        rows = []
        for label, ms in (("baseline", self.baseline_ms), ("tuned", self.result_ms)):
            if ms is None:
                continue
            rows.append(PerfRecord(
                target="aoe", batch=batch or 1, effective_batch=batch, model=model, stats={"mean": ms},
                throughput=batch * 1000.0 / ms if batch else None, source=self.source,
                settings={"aoe_job": self.job, "tuned": label == "tuned"},
                extra={"aoe": {k: v for k, v in self.to_dict().items() if k != "operators"},
                       **({} if batch else {"note": "batch unknown: no throughput"})}))
        return rows


def _number(value: Any, what: str, source: str) -> float | None:
    if value is None:
        return None
    text = str(value).strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise ToolOutputError(f"{source}: {what} is not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ToolOutputError(f"{source}: {what} is not finite: {value!r}")
    return number


def parse_aoe_result_json(source: str | os.PathLike | Mapping[str, Any]) -> list[AoeResult]:
    """The OPAT/SGAT sections of an ``aoe_result_*.json`` (``basic`` plus per-job figures).

    Raises:
        ToolOutputError: not JSON, truncated, or no job section with the documented keys.
    """
    if isinstance(source, Mapping):
        data, where = source, "AOE result"
    else:
        where = str(source)
        data = read_output_json(source, "AOE result")
    if not isinstance(data, Mapping):
        raise ToolOutputError(f"{where} is not an AOE result (a JSON object was expected)")
    basic = data.get("basic") if isinstance(data.get("basic"), Mapping) else {}
    results = []
    for job in ("SGAT", "OPAT"):
        section = data.get(job)
        if section is None:
            continue
        if isinstance(section, list):  # some versions wrap the section in a one-element list
            section = section[0] if section and isinstance(section[0], Mapping) else None
        if not isinstance(section, Mapping):
            raise ToolOutputError(f"{where}: the {job} section is not an object")
        baseline = _number(section.get("model_baseline_performance(ms)"), "model_baseline_performance(ms)", where)
        result = _number(section.get("model_result_performance(ms)"), "model_result_performance(ms)", where)
        improvement = _number(section.get("model_performance_improvement"), "model_performance_improvement",
                              where)
        if baseline is None and result is None and improvement is None:
            raise ToolOutputError(f"{where}: the {job} section has no model performance figures")
        for value, what in ((baseline, "baseline"), (result, "result")):
            if value is not None and value <= 0:
                raise ToolOutputError(f"{where}: {job} {what} latency {value} ms is not positive")
        if improvement is None and baseline and result:
            improvement = (baseline / result - 1.0) * 100.0
        operators = section.get("repo_modified_operators") or ()
        if isinstance(operators, Mapping):
            operators = [{"op": k, **(v if isinstance(v, Mapping) else {"value": v})} for k, v in operators.items()]
        results.append(AoeResult(
            job=job, baseline_ms=baseline, result_ms=result, improvement=improvement,
            tuning_name=basic.get("tuning_name"),
            tuning_time_s=_number(basic.get("tuning_time(s)"), "tuning_time(s)", where),
            operators=tuple(dict(o) for o in operators if isinstance(o, Mapping)), source=where))
    if not results:
        raise ToolOutputError(f"{where} has neither an SGAT nor an OPAT section: not an aoe_result JSON")
    return results


def find_result_files(directory: str | os.PathLike) -> list[Path]:
    """``aoe_result_*.json`` files under ``directory`` (where AOE ran), oldest first."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(root.rglob("aoe_result_*.json"), key=lambda p: (p.stat().st_mtime, p.name))


@dataclass(frozen=True)
class AoeRun:
    """A finished AOE job: the run, its improvement lines and result files."""

    run: ToolRun
    improvements: tuple[AoeImprovement, ...]
    results: tuple[AoeResult, ...]


def step(options: AoeOptions, description: str, *, bank: str | os.PathLike, bank_dir: str | os.PathLike | None = None,
         cwd: str | None = None, batch: int | None = None, group: str = "", skip: str | None = None,
         executable: str | os.PathLike | None = None) -> Step:
    """The plan step of one AOE job with ``TUNE_BANK_PATH=bank`` (relative to ``cwd``).

    ``bank_dir`` is the same folder as seen from where the plan runs (made first; default ``bank``).
    """
    made = str(bank_dir if bank_dir is not None else bank)
    argv = options.argv()
    if executable is not None:
        argv[0] = str(executable)
    return Step(tuple(argv), description, argv[0] if executable is not None else "aoe",
                env=(("TUNE_BANK_PATH", str(bank)),), cwd=cwd, makedirs=(made,), produces=(made,),
                success_line=SUCCESS_LINE, failure_line=FAILURE_LINE, group=group, skip=skip,
                info=StepInfo("aoe", batch=batch, job_type=options.job_type))


def read_results(run: ToolRun, directory: str | os.PathLike) -> AoeRun:
    """A finished job's improvement lines and the result files under ``directory`` (where it ran)."""
    results: list[AoeResult] = []
    for path in find_result_files(directory):
        try:
            results.extend(parse_aoe_result_json(path))
        except ToolOutputError:
            continue  # a stale or partial file of another job must not fail this one
    return AoeRun(run=run, improvements=tuple(parse_aoe_output(run.output)), results=tuple(results))


def run_aoe(options: AoeOptions, *, bank: str | os.PathLike, executable: str | os.PathLike | None = None,
            env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
            timeout: float | None = None, log_path: str | os.PathLike | None = None) -> AoeRun:
    """Run one AOE job alone: :func:`step` run as a plan runs it, then :func:`read_results`.

    Raises:
        ToolNotFoundError: aoe cannot be run.
        ToolError: AOE failed, timed out or never said it finished.
    """
    from ..plan import run_step

    one = step(options, f"AOE job {options.job_type}", bank=bank, cwd=str(cwd) if cwd is not None else None,
               executable=executable)
    return read_results(run_step(one, env=env, timeout=timeout, log_path=log_path), cwd or ".")
