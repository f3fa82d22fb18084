"""ais_bench (``python3 -m ais_bench``) and its predecessor ``ais_infer.py``: NPU inference and timing.

Two layouts of the same tool:

- ``python3 -m ais_bench --model x.om --batchsize 4 --loop 100 --output result --output_dirname r_bs4``
  writes its summary JSON *next to* the output folder: ``result/r_bs4_summary.json``;
- ``python3 ais_infer.py --model x.om ... --output ais_results`` (2022) wrote ``sumary.json`` (sic)
  *inside* the timestamped folder ``ais_results/2022_07_11-15_53_11/``.

Both print the same summary::

    [INFO] NPU_compute_time (ms): min = 0.52, max = 0.61, mean = 0.55, median = 0.55, percentile(99%) = 0.6
    [INFO] throughput 1000*batchsize.mean(B)/NPU_compute_time.mean(T): 1812.3

``--batchsize`` only feeds that throughput formula; the effective batch of a record is
the batch the tool divided by, recovered from its own throughput and mean.
"""

from __future__ import annotations

import math
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
from ..stat_fields import check_consistent, parse_stat_fields, percentile_key

TARGET = "ais-bench"
LAYOUTS = ("ais_bench", "ais_infer")
OUTFMTS = ("BIN", "NPY", "TXT")
SUMMARY_HEADER = "Performance Summary"
_STAT_LINE = re.compile(r"(?P<label>NPU_compute_time|H2D_latency|D2H_latency)\s*\(ms\)\s*:(?P<rest>[^\n]*)")
_THROUGHPUT = re.compile(r"throughput\s+1000\*batchsize\.mean\(B\)/NPU_compute_time\.mean\(T\)\s*:\s*"
                         r"(?P<value>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$", re.MULTILINE)
SUCCESS_LINE = re.compile(r"throughput 1000\*batchsize")


@dataclass(frozen=True)
class AisBenchOptions:
    """One ais_bench run. ``None`` leaves an option out.

    Attributes:
        model: the ``.om`` file.
        batchsize: the batch for the throughput formula (auto-detected when omitted).
        loop: inference iterations (ais_bench's default is 1: always give one for timing).
        warmup_count: warm-up iterations.
        device: the NPU id.
        input: a folder or files of ``.bin`` inputs; omitted means pure inference on zeros.
        output: where outputs and the summary JSON go.
        output_dirname: the sub-folder under ``output`` (instead of a timestamp).
        outfmt: BIN / NPY / TXT.
        display_all_summary: also print H2D and D2H latency.
        profiler: collect an msprof profile under ``output``.
        layout: ``ais_bench`` (``python3 -m ais_bench``) or ``ais_infer`` (``python3 ais_infer.py``).
        python: the interpreter with ais_bench installed.
        script: the ais_infer.py path for the old layout.
        extra: other ``--key value`` pairs.
    """

    model: str
    batchsize: int | None = None
    loop: int | None = None
    warmup_count: int | None = None
    device: int | None = None
    input: str | None = None
    output: str | None = None
    output_dirname: str | None = None
    outfmt: str | None = None
    display_all_summary: bool = False
    profiler: bool = False
    layout: str = "ais_bench"
    python: str = "python3"
    script: str = "ais_infer.py"
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UsageError(f"ais_bench layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        for name in ("batchsize", "loop"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"ais_bench --{name} must be a positive integer, got {value!r}")
        if self.warmup_count is not None and self.warmup_count < 0:
            raise UsageError(f"ais_bench --warmup_count must be >= 0, got {self.warmup_count!r}")
        if self.outfmt is not None and self.outfmt not in OUTFMTS:
            raise UsageError(f"ais_bench --outfmt must be one of {', '.join(OUTFMTS)}, got {self.outfmt!r}")
        if self.output_dirname and not self.output:
            raise UsageError("ais_bench --output_dirname needs --output")

    def argv(self) -> list[str]:
        """The exact command (``--key value`` tokens; flags rendered as ``--flag 1``)."""
        head = ([self.python, "-m", "ais_bench"] if self.layout == "ais_bench"
                else [self.python, self.script])
        named: list[tuple[str, object]] = [
            ("model", self.model), ("input", self.input), ("output", self.output),
            ("output_dirname", self.output_dirname), ("outfmt", self.outfmt), ("batchsize", self.batchsize),
            ("loop", self.loop), ("warmup_count", self.warmup_count), ("device", self.device),
            ("display_all_summary", 1 if self.display_all_summary else None),
            ("profiler", 1 if self.profiler else None),
        ]
        argv = list(head)
        for key, value in [*named, *self.extra]:
            if value is not None:
                argv += [f"--{key}", str(value)]
        return argv

    def summary_json_path(self) -> Path | None:
        """Where the new layout writes its summary JSON (``<output>/<output_dirname>_summary.json``)."""
        if self.layout == "ais_bench" and self.output and self.output_dirname:
            return Path(self.output) / f"{self.output_dirname}_summary.json"
        return None


def _ms_stats(block: Any, key: str, where: str) -> dict[str, float]:
    if not isinstance(block, Mapping):
        raise ToolOutputError(f"{where}: {key} is not an object")
    stats: dict[str, float] = {}
    for name, value in block.items():
        match = re.fullmatch(r"percentile\s*\(\s*(\d+(?:\.\d+)?)\s*%\s*\)", str(name).strip())
        out = percentile_key(match.group(1)) if match else str(name)
        if out not in ("min", "max", "mean", "median", "count") and not match:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ToolOutputError(f"{where}: {key}.{name} is not a number: {value!r}") from None
        if not math.isfinite(number):
            raise ToolOutputError(f"{where}: {key}.{name} is not finite")
        stats[out] = number
    missing = [k for k in ("min", "max", "mean") if k not in stats]
    if missing:
        raise ToolOutputError(f"{where}: {key} lacks {', '.join(missing)}")
    check_consistent({k: v for k, v in stats.items() if k != "count"}, where)
    return stats


def _effective_batch(throughput: float | None, mean_ms: float, batch: int | None, where: str) -> int | None:
    """The batch ais_bench divided by: from its throughput and mean when they are consistent."""
    if throughput is None or throughput <= 0 or mean_ms <= 0:
        return batch
    derived = throughput * mean_ms / 1000.0
    rounded = max(1, round(derived))
    if abs(derived - rounded) > 0.005 * rounded + 1e-3:  # printed figures are rounded to 4 decimals
        # the tool's batchsize.mean was fractional (dynamic batch) or the numbers disagree
        if batch is None:
            raise ToolOutputError(f"{where}: throughput {throughput} and mean {mean_ms} ms imply a batch of "
                                  f"{derived:.3f}, not a whole number; give the batch explicitly")
        return batch
    if batch is not None and batch != rounded:
        raise ToolOutputError(f"{where}: throughput {throughput} and mean {mean_ms} ms imply batch {rounded}, "
                              f"but batch {batch} was given")
    return rounded


def parse_summary_json(source: str | os.PathLike | Mapping[str, Any], *, batch: int | None = None,
                       model: str | None = None) -> PerfRecord:
    """A PerfRecord from an ais_bench ``*_summary.json`` or ais_infer ``sumary.json``.

    The per-iteration ``npu_compute_time_list`` becomes ``latencies_ms``; ``stats`` are the
    tool's own figures. ``throughput`` is recomputed from the effective batch and mean.

    Raises:
        ToolOutputError: not JSON, truncated, or lacking ``NPU_compute_time``.
    """
    if isinstance(source, Mapping):
        data, where = source, "ais_bench summary"
    else:
        where = str(source)
        data = read_output_json(source, "ais_bench summary")
    if not isinstance(data, Mapping) or "NPU_compute_time" not in data:
        raise ToolOutputError(f"{where} is not an ais_bench summary (no NPU_compute_time)")
    stats = _ms_stats(data["NPU_compute_time"], "NPU_compute_time", where)
    count = stats.pop("count", None)
    samples = data.get("npu_compute_time_list") or []
    latencies: list[float] = []
    if isinstance(samples, list) and samples:
        try:
            latencies = [float(x) for x in samples]
        except (TypeError, ValueError):
            raise ToolOutputError(f"{where}: npu_compute_time_list holds a non-number") from None
        if count is not None and int(count) != len(latencies):
            raise ToolOutputError(f"{where}: npu_compute_time_list has {len(latencies)} values, count says "
                                  f"{int(count)} (truncated?)")
    args = data.get("args") if isinstance(data.get("args"), Mapping) else {}
    asked = batch if batch is not None else _int_or_none(args.get("batchsize"))
    tool_throughput = _float_or_none(data.get("throughput"), "throughput", where)
    eff = _effective_batch(tool_throughput, stats["mean"], asked, where)
    extra: dict[str, Any] = {"tool_throughput": tool_throughput}
    for key in ("H2D_latency", "D2H_latency"):
        if isinstance(data.get(key), Mapping) and data[key]:
            try:
                extra[key] = _ms_stats(data[key], key, where)
            except ToolOutputError:
                continue  # optional figures; NPU time is what the record is about
    record = PerfRecord(
        target=TARGET, batch=asked or eff or 1, effective_batch=eff,
        model=model or _str_or_none(args.get("model")), latencies_ms=latencies, stats=stats,
        throughput=eff * 1000.0 / stats["mean"] if eff and stats["mean"] > 0 else None,
        warmup=_int_or_none(args.get("warmup_count")) or 0,
        iterations=int(count) if count is not None else len(latencies) or (_int_or_none(args.get("loop")) or 0),
        source=where, settings={k: args[k] for k in ("device", "loop", "batchsize") if k in args}, extra=extra)
    return record


def parse_summary_text(text: str, *, batch: int | None = None, model: str | None = None,
                       source: str | None = None) -> PerfRecord:
    """A PerfRecord from the printed ``Performance Summary`` (stdout or a saved log).

    Raises:
        ToolOutputError: no ``NPU_compute_time`` line, or the summary is cut short.
    """
    where = source or "ais_bench output"
    lines = {m.group("label"): (m.group("rest"), text[: m.start()].count("\n") + 1)
             for m in _STAT_LINE.finditer(text)}
    if "NPU_compute_time" not in lines:
        raise ToolOutputError(f"{where}: no 'NPU_compute_time (ms):' summary line (did ais_bench finish?)")
    rest, lineno = lines["NPU_compute_time"]
    stats = parse_stat_fields(rest, where=f"{where}:{lineno}")
    matches = list(_THROUGHPUT.finditer(text))
    if not matches:
        raise ToolOutputError(f"{where}: no 'throughput 1000*batchsize...' line after the summary (truncated?)")
    tool_throughput = float(matches[-1].group("value"))
    eff = _effective_batch(tool_throughput, stats["mean"], batch, where)
    extra: dict[str, Any] = {"tool_throughput": tool_throughput}
    for key in ("H2D_latency", "D2H_latency"):
        if key in lines:
            extra[key] = parse_stat_fields(lines[key][0], where=f"{where}:{lines[key][1]}")
    return PerfRecord(target=TARGET, batch=batch or eff or 1, effective_batch=eff, model=model, stats=stats,
                      throughput=eff * 1000.0 / stats["mean"] if eff else None, source=where, extra=extra)


def step(options: AisBenchOptions, description: str, *, batch: int | None = None, build: str | None = None,
         group: str = "") -> Step:
    """The plan step of one ais_bench run (needs the interpreter with the ais_bench module)."""
    summary = options.summary_json_path()
    return Step(tuple(options.argv()), description, "python:ais_bench",
                produces=(str(summary),) if summary else (), success_line=SUCCESS_LINE, group=group,
                info=StepInfo("ais_bench", batch=batch, build=build, om=options.model,
                              summary=str(summary) if summary else None))


def read_record(run: ToolRun, options: AisBenchOptions, *, cwd: str | os.PathLike | None = None) -> PerfRecord:
    """The record of a finished run: its summary JSON, or lacking one, its printed summary.

    Raises:
        ToolOutputError: neither holds a summary.
    """
    summary = options.summary_json_path()
    if summary is not None:
        summary = Path(cwd or ".") / summary
    if summary is not None and summary.is_file():
        record = parse_summary_json(summary, batch=options.batchsize, model=options.model)
    else:
        record = parse_summary_text(run.output, batch=options.batchsize, model=options.model,
                                    source=str(run.log_path) if run.log_path else None)
    record.settings.update({"loop": options.loop, "device": options.device, "layout": options.layout})
    return record


def run_ais_bench(options: AisBenchOptions, *, env: Mapping[str, str] | None = None, timeout: float | None = None,
                  log_path: str | os.PathLike | None = None) -> tuple[ToolRun, PerfRecord]:
    """Run ais_bench alone: :func:`step` run as a plan runs it, then :func:`read_record`.

    Raises:
        ToolNotFoundError: the interpreter or its ais_bench module is missing.
        ToolError: ais_bench failed, timed out, or printed no summary.
    """
    from ..plan import run_step

    run = run_step(step(options, f"measure {options.model}"), env=env, timeout=timeout, log_path=log_path)
    return run, read_record(run, options)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToolOutputError(f"{where}: {what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ToolOutputError(f"{where}: {what} is not finite")
    return number


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None
