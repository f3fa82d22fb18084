"""trtexec, TensorRT's benchmark: the GPU baseline behind the guides' T4 columns.

The guides ran ``trtexec --onnx=M.onnx --fp16 --shapes=<input>:1x3xHxW`` and reported
``1000 / mean GPU Compute Time (ms) × batch`` as the T4 fps. Two summary formats:

- TensorRT 7: ``GPU Compute Time: min = 13.28 ms, max = ..., mean = ..., median = ..., percentile(99%) = ...``
  (TensorRT 6/7.0 printed a ``GPU Compute`` header then ``min: … ms`` lines and
  ``percentile: … ms at 99%``);
- TensorRT 8+: an ``=== Performance summary ===`` block with ``Throughput: X qps`` and the
  same statistics for Latency, Enqueue Time, H2D, GPU Compute Time and D2H, with
  ``percentile(90%)``, ``percentile(95%)`` and ``percentile(99%)``.

Percentiles are matched by label, never by position.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.shapes import format_shape, parse_shapes
from surgery.targets.plan import Step, StepInfo

from ..runner import ToolOutputError, ToolRun
from ..stat_fields import check_consistent, parse_stat_fields, percentile_key

TARGET = "trtexec"
SUCCESS_LINE = re.compile(r"^&&&& PASSED TensorRT\.trtexec", re.MULTILINE)
FAILURE_LINE = re.compile(r"^&&&& FAILED TensorRT\.trtexec", re.MULTILINE)
_PREFIX = r"^(?:\[[^\]]*\]\s*)*"  # "[03/14/2023-10:00:00] [I] " prefixes
_INLINE = re.compile(_PREFIX + r"(?P<label>GPU Compute Time|GPU Compute|Latency|Host Latency|Enqueue Time|"
                     r"H2D Latency|D2H Latency|End-to-End Host Latency)\s*:(?P<rest>.*)$", re.MULTILINE)
_BLOCK_HEADER = re.compile(_PREFIX + r"(?P<label>GPU Compute|Host Latency)\s*$", re.MULTILINE)
_BLOCK_FIELD = re.compile(_PREFIX + r"(?P<key>min|max|mean|median|percentile)\s*:\s*(?P<value>[\d.eE+-]+)\s*ms"
                          r"(?:\s*at\s*(?P<pct>\d+(?:\.\d+)?)\s*%)?")
_THROUGHPUT = re.compile(_PREFIX + r"Throughput\s*:\s*(?P<value>[\d.eE+-]+)\s*qps", re.MULTILINE)
_RUNNING = re.compile(r"&&&& (?:RUNNING|PASSED|FAILED) TensorRT\.trtexec(?: \[TensorRT v(?P<ver>\d+)\])?"
                      r"\s*#\s*(?P<cmd>.*)$", re.MULTILINE)
_VERSION = re.compile(r"TensorRT version:\s*(?P<ver>\d+(?:\.\d+)+)")
_INFER_SHAPE = re.compile(r"Input inference shape\s*:\s*(?P<name>.+?)=(?P<dims>\d+(?:x\d+)*)")
_BATCH_IN_NAME = re.compile(r"(?:_bs|bs|batch)(\d+)", re.IGNORECASE)
_LABEL_KEY = {"GPU Compute Time": "gpu_compute", "GPU Compute": "gpu_compute", "Latency": "latency",
              "Host Latency": "host_latency", "Enqueue Time": "enqueue", "H2D Latency": "h2d",
              "D2H Latency": "d2h", "End-to-End Host Latency": "end_to_end"}

ShapeMap = Mapping[str, Sequence[int]]


def format_trt_shapes(shapes: ShapeMap | str) -> str:
    """trtexec's shape syntax: ``input:1x3x224x224,other:1x10``."""
    if isinstance(shapes, str):
        return shapes
    return ",".join(f"{name}:{format_shape(tuple(dims))}" for name, dims in shapes.items())


@dataclass(frozen=True)
class TrtexecOptions:
    """One trtexec run. ``None``/False leaves an option out.

    Attributes:
        onnx: the ONNX model (or give ``load_engine``).
        fp16, int8: precision switches.
        shapes: run shapes ``{name: dims}`` (or the rendered string).
        min_shapes, opt_shapes, max_shapes: the optimisation profile of a dynamic model.
        workspace: builder workspace in MiB (TensorRT ≤ 8.3; later ones take ``--memPoolSize``).
        save_engine, load_engine: engine files.
        iterations, warm_up (ms), duration (s), avg_runs: measurement controls.
        threads: the ``--threads`` switch the ICNet guide used (TensorRT 7).
        extra: other ``--key=value`` pairs (a ``None`` value renders a bare ``--key``).
        trtexec: the executable.
    """

    onnx: str | None = None
    fp16: bool = False
    int8: bool = False
    shapes: ShapeMap | str | None = None
    min_shapes: ShapeMap | str | None = None
    opt_shapes: ShapeMap | str | None = None
    max_shapes: ShapeMap | str | None = None
    workspace: int | None = None
    save_engine: str | None = None
    load_engine: str | None = None
    iterations: int | None = None
    warm_up: int | None = None
    duration: int | None = None
    avg_runs: int | None = None
    threads: bool = False
    extra: tuple[tuple[str, str | None], ...] = field(default_factory=tuple)
    trtexec: str = "trtexec"

    def __post_init__(self) -> None:
        if (self.onnx is None) == (self.load_engine is None):
            raise UsageError("trtexec needs exactly one of --onnx and --loadEngine")
        profile = [self.min_shapes, self.opt_shapes, self.max_shapes]
        if any(p is not None for p in profile) and not all(p is not None for p in profile):
            raise UsageError("trtexec needs --minShapes, --optShapes and --maxShapes together")
        for name in ("workspace", "iterations", "avg_runs", "duration"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"trtexec {name} must be a positive integer, got {value!r}")
        if self.warm_up is not None and self.warm_up < 0:
            raise UsageError(f"trtexec warm_up must be >= 0 ms, got {self.warm_up}")
        for value in (self.shapes, self.min_shapes, self.opt_shapes, self.max_shapes):
            if isinstance(value, str):
                _parse_trt_shapes(value)

    def argv(self) -> list[str]:
        """The exact command, ``--key=value`` style."""
        pairs: list[tuple[str, object]] = [
            ("onnx", self.onnx), ("loadEngine", self.load_engine), ("fp16", self.fp16 or None),
            ("int8", self.int8 or None),
            ("shapes", format_trt_shapes(self.shapes) if self.shapes is not None else None),
            ("minShapes", format_trt_shapes(self.min_shapes) if self.min_shapes is not None else None),
            ("optShapes", format_trt_shapes(self.opt_shapes) if self.opt_shapes is not None else None),
            ("maxShapes", format_trt_shapes(self.max_shapes) if self.max_shapes is not None else None),
            ("workspace", self.workspace), ("saveEngine", self.save_engine), ("iterations", self.iterations),
            ("warmUp", self.warm_up), ("duration", self.duration), ("avgRuns", self.avg_runs),
            ("threads", self.threads or None),
        ]
        argv = [self.trtexec]
        for key, value in pairs:
            if value is True:
                argv.append(f"--{key}")
            elif value is not None:
                argv.append(f"--{key}={value}")
        for key, value in self.extra:
            argv.append(f"--{key}" if value is None else f"--{key}={value}")
        return argv

    def batch(self) -> int | None:
        """The batch the run shapes give (the leading dimension shared by the inputs), if any."""
        shapes = self.shapes if self.shapes is not None else self.opt_shapes
        if shapes is None:
            return None
        parsed = _parse_trt_shapes(shapes) if isinstance(shapes, str) else {k: tuple(v) for k, v in shapes.items()}
        return _leading(parsed)


def _parse_trt_shapes(text: str) -> dict[str, tuple[int | str, ...]]:
    return parse_shapes(text)


def _leading(shapes: Mapping[str, Sequence[int | str]]) -> int | None:
    dims = {d[0] for d in shapes.values() if d and isinstance(d[0], int)}
    return dims.pop() if len(dims) == 1 else (max(dims) if dims else None)


def t4_options(onnx: str, input_shapes: ShapeMap, *, fp16: bool = True, threads: bool = False) -> TrtexecOptions:
    """The command behind a guide's T4 column: ``trtexec --onnx=M.onnx --fp16 --shapes=...``."""
    return TrtexecOptions(onnx=onnx, fp16=fp16, shapes=dict(input_shapes), threads=threads)


@dataclass(frozen=True)
class TrtexecSummary:
    """The figures of one trtexec log: statistics per section (ms), qps, version, run shapes."""

    sections: dict[str, dict[str, float]]
    qps: float | None
    version: str | None
    shapes: dict[str, tuple[int | str, ...]]
    format: str  # "trt8", "trt7" or "trt6"


def parse_summary(text: str, *, source: str | None = None) -> TrtexecSummary:
    """Read every latency section, the qps, version and run shapes of a trtexec log.

    Raises:
        ToolOutputError: no GPU Compute statistics, or a section cut short.
    """
    where = source or "trtexec output"
    sections: dict[str, dict[str, float]] = {}
    for match in _INLINE.finditer(text):
        rest = match.group("rest")
        if "=" not in rest:  # "Latency: ..." prose lines of the build log, not statistics
            continue
        key = _LABEL_KEY[match.group("label")]
        lineno = text[: match.start()].count("\n") + 1
        sections[key] = parse_stat_fields(rest, where=f"{where}:{lineno}")
    fmt = "trt8" if "=== Performance summary ===" in text else "trt7"
    if "gpu_compute" not in sections:
        block = _parse_blocks(text, where)
        if block:
            sections.update(block)
            fmt = "trt6"
    if "gpu_compute" not in sections:
        if re.search(r"GPU Compute", text):
            raise ToolOutputError(f"{where}: the GPU Compute statistics are incomplete (truncated output?)")
        raise ToolOutputError(f"{where}: no 'GPU Compute Time' statistics: not a trtexec summary")
    qps_matches = list(_THROUGHPUT.finditer(text))
    qps = float(qps_matches[-1].group("value")) if qps_matches else None
    if qps is not None and (not math.isfinite(qps) or qps <= 0):
        raise ToolOutputError(f"{where}: throughput {qps} qps is not positive")
    version = None
    running = _RUNNING.search(text)
    shapes: dict[str, tuple[int | str, ...]] = {}
    if running:
        if running.group("ver"):
            code = int(running.group("ver"))  # NV_TENSORRT_VERSION: major*1000 + minor*100 + patch
            version = f"{code // 1000}.{code % 1000 // 100}.{code % 100}"
        for token in shlex.split(running.group("cmd"), posix=True):
            if token.startswith("--shapes="):
                shapes = dict(_parse_trt_shapes(token.split("=", 1)[1]))
    named = _VERSION.search(text)
    if named:
        version = named.group("ver")
    if not shapes:
        for match in _INFER_SHAPE.finditer(text):
            shapes[match.group("name").strip()] = tuple(int(d) for d in match.group("dims").split("x"))
    return TrtexecSummary(sections=sections, qps=qps, version=version, shapes=shapes, format=fmt)


def _parse_blocks(text: str, where: str) -> dict[str, dict[str, float]]:
    """TensorRT 6/7.0: a ``GPU Compute`` header line followed by ``min: x ms`` ... ``percentile: x ms at 99%``."""
    out: dict[str, dict[str, float]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = _BLOCK_HEADER.match(line)
        if not header:
            continue
        stats: dict[str, float] = {}
        for follow in lines[i + 1: i + 8]:
            field_match = _BLOCK_FIELD.match(follow)
            if not field_match:
                continue
            key = field_match.group("key")
            if key == "percentile":
                if not field_match.group("pct"):
                    raise ToolOutputError(f"{where}:{i + 1}: percentile without its 'at NN%' label")
                key = percentile_key(field_match.group("pct"))
            stats.setdefault(key, float(field_match.group("value")))
        missing = [k for k in ("min", "max", "mean", "median") if k not in stats]
        if missing:
            raise ToolOutputError(f"{where}:{i + 1}: {header.group('label')} block lacks {', '.join(missing)} "
                                  f"(truncated output?)")
        check_consistent(stats, f"{where}:{i + 1}")
        out[_LABEL_KEY[header.group("label")]] = stats
    return out


def parse_output(text: str, *, batch: int | None = None, source: str | None = None,
                 model: str | None = None) -> PerfRecord:
    """A PerfRecord from a trtexec log: GPU Compute Time statistics, throughput per the guides' convention.

    ``throughput`` = effective batch × 1000 / mean GPU Compute Time (how the guides' T4
    columns were computed); trtexec's own ``qps × batch`` is kept in ``extra``. The batch is
    ``batch``, else the leading dimension of the ``--shapes`` the log echoes, else a
    ``bs<N>`` in the file name.

    Raises:
        ToolOutputError: no complete GPU Compute statistics, or no way to know the batch.
    """
    where = source or "trtexec output"
    summary = parse_summary(text, source=where)
    eff = batch or _leading(summary.shapes)
    if eff is None and source:
        named = _BATCH_IN_NAME.search(Path(source).name)
        eff = int(named.group(1)) if named else None
    if eff is None:
        raise ToolOutputError(f"{where}: the batch size is not in the log (no --shapes echoed); give it "
                              f"(e.g. --batch 4)")
    gpu = summary.sections["gpu_compute"]
    extra: dict[str, Any] = {"sections": {k: v for k, v in summary.sections.items() if k != "gpu_compute"},
                             "format": summary.format}
    if summary.qps is not None:
        extra["qps"] = summary.qps
        extra["qps_x_batch"] = summary.qps * eff
    return PerfRecord(target=TARGET, batch=eff, effective_batch=eff, model=model,
                      target_version=summary.version, stats=dict(gpu),
                      throughput=eff * 1000.0 / gpu["mean"] if gpu["mean"] > 0 else None, source=where,
                      settings={"shapes": {k: list(v) for k, v in summary.shapes.items()}}, extra=extra)


def step(options: TrtexecOptions, description: str, *, batch: int | None = None, group: str = "") -> Step:
    """The plan step of one trtexec run; success needs exit 0 and ``&&&& PASSED``."""
    return Step(tuple(options.argv()), description, "trtexec", success_line=SUCCESS_LINE, failure_line=FAILURE_LINE,
                group=group, info=StepInfo("trtexec", batch=batch))


def read_record(run: ToolRun, options: TrtexecOptions, *, batch: int | None = None) -> PerfRecord:
    """The record of a finished run, from its printed summary.

    Raises:
        ToolOutputError: the output holds no summary.
    """
    record = parse_output(run.output, batch=options.batch() or batch,
                          source=str(run.log_path) if run.log_path else None,
                          model=options.onnx or options.load_engine)
    record.settings.update({"fp16": options.fp16, "int8": options.int8})
    return record


def run_trtexec(options: TrtexecOptions, *, env: Mapping[str, str] | None = None, timeout: float | None = None,
                log_path: str | os.PathLike | None = None) -> tuple[ToolRun, PerfRecord]:
    """Run trtexec alone: :func:`step` run as a plan runs it, then :func:`read_record`.

    Raises:
        ToolNotFoundError, ToolError: as :func:`~surgery.tools.runner.run_tool`.
    """
    from ..plan import run_step

    run = run_step(step(options, f"trtexec {options.onnx}"), env=env, timeout=timeout, log_path=log_path)
    return run, read_record(run, options)
