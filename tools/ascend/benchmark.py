"""The legacy ``benchmark.x86_64`` / ``benchmark.aarch64`` binary (CANN 5.x and before).

Two modes, single-dash ``-key=value`` options:

- pure inference: ``./benchmark.x86_64 -round=20 -om_path=x.om -device_id=0 -batch_size=4`` prints
  ``[INFO] ave_throughputRate: 440.606samples/s, ave_latency: 2.304ms`` (some guides quote
  ``ave_throughputRate = … samples/s, ave_latency = … ms``);
- dataset: ``-model_type=vision ... -input_text_path=x.info`` writes
  ``result/perf_vision_batchsize_{bs}_device_{d}.txt`` whose ``[inference]``/``[infer]``
  line carries the ``Interface throughputRate`` the guides report (×4 per 310 card).

``ave_latency`` is per *sample* (the reciprocal of the throughput), so a record's
per-call latency is ``ave_latency × batch``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.targets.plan import Step, StepInfo

from ..runner import ToolOutputError, ToolRun

TARGET = "ascend-benchmark"
CHIPS_PER_310_CARD = 4
_NUMBER = r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_PURE = re.compile(rf"ave_throughputRate\s*[:=]\s*{_NUMBER}\s*samples/s\s*[,，]\s*ave_latency\s*[:=]\s*{_NUMBER}"
                   r"\s*ms\b")
_PURE_PARTIAL = re.compile(r"ave_throughputRate")
_PURE_FILE = re.compile(r"PureInfer_perf_of_(?P<om>.+?)_in_device_(?P<device>\d+)\.txt")
_VISION_FILE = re.compile(r"perf_vision_batchsize_(?P<bs>\d+)_device_(?P<device>\d+)\.txt$")
_VISION_LINE = re.compile(r"^\s*\[(?P<stage>[^\]]+)\]\s*(?P<rest>.*)$")
_KV = re.compile(rf"([A-Za-z][A-Za-z ]*?)\s*:\s*{_NUMBER}")
_BATCH_IN_NAME = re.compile(r"(?:_bs|batchsize_|_batch)(\d+)")
SUCCESS_LINE = "ave_throughputRate"


@dataclass(frozen=True)
class BenchmarkOptions:
    """One benchmark run. ``round`` set means pure inference; ``input_text_path`` set means dataset mode.

    Attributes:
        om_path: the ``.om``.
        batch_size: the om's batch.
        device_id: the NPU id.
        round: pure-inference iterations.
        model_type: ``vision`` for dataset mode.
        input_text_path: the ``.info`` file listing the ``.bin`` inputs.
        input_width, input_height: copied into the info pairing (the guides pass them as given).
        output_binary: write ``.bin`` (True) or ``.txt`` (False) outputs.
        use_dvpp: DVPP preprocessing (the guides use False).
        binary: the executable, e.g. ``./benchmark.x86_64``.
    """

    om_path: str
    batch_size: int
    device_id: int = 0
    round: int | None = None
    model_type: str | None = None
    input_text_path: str | None = None
    input_width: int | None = None
    input_height: int | None = None
    output_binary: bool | None = None
    use_dvpp: bool | None = None
    binary: str = "./benchmark.x86_64"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"benchmark -batch_size must be a positive integer, got {self.batch_size!r}")
        if (self.round is None) == (self.input_text_path is None):
            raise UsageError("benchmark runs either pure inference (-round) or a dataset (-input_text_path)")
        if self.round is not None and self.round < 1:
            raise UsageError(f"benchmark -round must be >= 1, got {self.round}")

    def argv(self) -> list[str]:
        """The exact command in the guides' option order."""
        if self.round is not None:
            pairs: list[tuple[str, object]] = [("round", self.round), ("om_path", self.om_path),
                                               ("device_id", self.device_id), ("batch_size", self.batch_size)]
        else:
            pairs = [("model_type", self.model_type or "vision"), ("device_id", self.device_id),
                     ("batch_size", self.batch_size), ("om_path", self.om_path),
                     ("input_text_path", self.input_text_path), ("input_width", self.input_width),
                     ("input_height", self.input_height), ("output_binary", self.output_binary),
                     ("useDvpp", self.use_dvpp)]
        return [self.binary, *(f"-{k}={_text(v)}" for k, v in pairs if v is not None)]

    def perf_file(self) -> str:
        """Where dataset mode writes its perf file (relative to the working directory)."""
        return f"result/perf_vision_batchsize_{self.batch_size}_device_{self.device_id}.txt"


def _text(value: object) -> str:
    return ("True" if value else "False") if isinstance(value, bool) else str(value)


def batch_from_name(name: str) -> int | None:
    """A batch size named in a file or om name (``cspresnext_bs4``, ``perf_vision_batchsize_16_...``)."""
    match = _BATCH_IN_NAME.search(Path(name).name)
    return int(match.group(1)) if match else None


def parse_pure_infer(text: str, *, batch: int | None = None, source: str | None = None,
                     model: str | None = None) -> PerfRecord:
    """A PerfRecord from the pure-inference summary (``ave_throughputRate``, ``ave_latency``).

    The batch comes from ``batch``, else the ``PureInfer_perf_of_<om>`` line or file name.

    Raises:
        ToolOutputError: no complete summary line, or no way to know the batch.
    """
    where = source or "benchmark output"
    matches = list(_PURE.finditer(text))
    if not matches:
        if _PURE_PARTIAL.search(text):
            raise ToolOutputError(f"{where}: the ave_throughputRate line is incomplete (truncated output?)")
        raise ToolOutputError(f"{where}: no 'ave_throughputRate: … samples/s, ave_latency: … ms' line")
    match = matches[-1]
    rate, per_sample_ms = float(match.group(1)), float(match.group(2))
    if rate <= 0 or per_sample_ms <= 0 or not math.isfinite(rate):
        raise ToolOutputError(f"{where}: non-positive throughput or latency in {match.group(0)!r}")
    om = None
    saved = _PURE_FILE.search(text) or (_PURE_FILE.search(source) if source else None)
    if saved:
        om = saved.group("om")
    if batch is None:
        batch = batch_from_name(om or "") or (batch_from_name(source) if source else None)
    if batch is None:
        raise ToolOutputError(f"{where}: the batch size is not in the output nor the file name; give it "
                              f"(e.g. --batch 4)")
    return PerfRecord(
        target=TARGET, batch=batch, effective_batch=batch, model=model or om,
        stats={"mean": per_sample_ms * batch}, throughput=rate, source=where,
        extra={"ave_latency_per_sample_ms": per_sample_ms, "ave_throughputRate": rate,
               "note": "benchmark reports per-sample latency; mean is ave_latency x batch"})


def parse_perf_vision(text: str, *, source: str | None = None, batch: int | None = None,
                      model: str | None = None) -> PerfRecord:
    """A PerfRecord from ``perf_vision_batchsize_{bs}_device_{d}.txt``.

    ``throughput`` is the inference stage's ``Interface throughputRate`` (per chip), as the
    guides read it; ``extra`` keeps every stage and the ×4 per-310-card figure.

    Raises:
        ToolOutputError: fewer than the five stage lines, or no Interface throughputRate.
    """
    where = source or "perf_vision file"
    stages: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _VISION_LINE.match(line)
        if not match:
            raise ToolOutputError(f"{where}:{lineno}: not a perf_vision line: {line.strip()[:120]!r}")
        fields = {k.strip(): float(v) for k, v in _KV.findall(match.group("rest"))}
        if not fields:
            raise ToolOutputError(f"{where}:{lineno}: no figures in {line.strip()[:120]!r} (truncated?)")
        stages[match.group("stage").strip()] = fields
    infer = stages.get("inference") or stages.get("infer")
    if infer is None or "Interface throughputRate" not in infer:
        raise ToolOutputError(f"{where}: no [inference] line with an Interface throughputRate (truncated?)")
    if len(stages) < 5:
        raise ToolOutputError(f"{where}: {len(stages)} of the 5 stage lines (e2e, data read, preprocess, "
                              f"inference, postprocess): truncated file?")
    interface = infer["Interface throughputRate"]
    if interface <= 0:
        raise ToolOutputError(f"{where}: Interface throughputRate {interface} is not positive")
    device = None
    named = _VISION_FILE.search(source or "")
    if named:
        batch = batch or int(named.group("bs"))
        device = int(named.group("device"))
    if batch is None:
        raise ToolOutputError(f"{where}: the batch size is not in the file name; give it (e.g. --batch 16)")
    return PerfRecord(
        target=TARGET, batch=batch, effective_batch=batch, model=model, throughput=interface, source=where,
        settings={"device_id": device} if device is not None else {},
        extra={"stages": stages, "interface_throughput": interface,
               "throughput_per_310_card": interface * CHIPS_PER_310_CARD,
               "note": "throughput is Interface throughputRate per chip; a 310 card has 4 chips"})


def step(options: BenchmarkOptions, description: str, *, cwd: str | None = None, batch: int | None = None,
         group: str = "") -> Step:
    """The plan step of one run of the legacy benchmark binary (its path is the requirement)."""
    pure = options.round is not None
    return Step(tuple(options.argv()), description, options.argv()[0], cwd=cwd,
                success_line=SUCCESS_LINE if pure else None, group=group,
                info=StepInfo("benchmark", batch=batch or options.batch_size, om=options.om_path))


def read_record(run: ToolRun, options: BenchmarkOptions, *, cwd: str | os.PathLike | None = None) -> PerfRecord:
    """The record of a finished run: its pure-inference summary, or its perf_vision file.

    Raises:
        ToolOutputError: no summary printed, or no perf file written.
    """
    if options.round is not None:
        record = parse_pure_infer(run.output, batch=options.batch_size, model=options.om_path)
        record.iterations = options.round or 0
        return record
    perf = Path(cwd or ".") / options.perf_file()
    try:
        text = perf.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolOutputError(f"benchmark wrote no perf file {perf}: {exc}") from None
    return parse_perf_vision(text, source=str(perf), batch=options.batch_size, model=options.om_path)


def run_benchmark(options: BenchmarkOptions, *, env: Mapping[str, str] | None = None,
                  cwd: str | os.PathLike | None = None, timeout: float | None = None,
                  log_path: str | os.PathLike | None = None) -> tuple[ToolRun, PerfRecord]:
    """Run the benchmark binary alone: :func:`step` run as a plan runs it, then :func:`read_record`.

    Raises:
        ToolNotFoundError, ToolError: as :func:`~surgery.tools.runner.run_tool`.
    """
    from ..plan import run_step

    one = step(options, f"benchmark {options.om_path}", cwd=str(cwd) if cwd is not None else None)
    run = run_step(one, env=env, timeout=timeout, log_path=log_path)
    return run, read_record(run, options, cwd=cwd)
