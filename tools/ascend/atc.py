"""ATC, the CANN model compiler: ONNX (framework 5) → offline model ``.om``.

``AtcOptions.argv()`` renders the exact command line the ModelZoo guides type, e.g.::

    atc --framework=5 --model=ICNet.onnx --output=ICNet_bs1 --out_nodes=Resize_317:0 --input_format=NCHW
        --input_shape=actual_input_1:1,3,1024,2048 --log=debug --soc_version=Ascend310P3

ATC prints ``ATC run success, welcome to the next use.`` on success and
``ATC run failed, ...`` followed by a coded message (``E10001``, ``EZ3003``) on failure.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from surgery.errors import UsageError
from surgery.targets.plan import Step, StepInfo

from ..runner import ToolOutputError, ToolRun

SUCCESS_LINE = "ATC run success"
DEFAULT_SOC = "Ascend310P3"  # the chip of the guides' 310P columns; `npu-smi info` shows the real one
FAILURE_LINE = "ATC run failed"
FRAMEWORK_ONNX = 5
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
PRECISION_MODES = ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_fp32_to_fp16",
                   "must_keep_origin_dtype", "allow_mix_precision", "allow_mix_precision_fp16",
                   "allow_mix_precision_bf16", "force_lowerprecision")
IMPLMODES = ("high_performance", "high_precision", "high_performance_for_all", "high_precision_for_all")
AUTO_TUNE_MODES = ("RL", "GA", "RL,GA", "GA,RL")
_WARNING = re.compile(r"\b(W\d{5}):\s*(.*)")

Shapes = Mapping[str, Sequence[int | str]]


def format_input_shape(shapes: Shapes | str) -> str:
    """ATC's ``--input_shape`` value: ``name:1,3,224,224;name2:1,10`` (-1 marks a dynamic dimension)."""
    if isinstance(shapes, str):
        return shapes
    parts = []
    for name, dims in shapes.items():
        rendered = ",".join("-1" if isinstance(d, str) else str(int(d)) for d in dims)
        parts.append(f"{name}:{rendered}")
    return ";".join(parts)


def parse_input_shape(text: str) -> dict[str, tuple[int, ...]]:
    """The inverse of :func:`format_input_shape`; tolerates the guides' ``name: 1,3,...`` spaces."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, dims = item.rpartition(":")
        if not sep or not name.strip():
            raise UsageError(f"bad ATC input shape {item!r}: expected name:n,c,h,w")
        try:
            shapes[name.strip()] = tuple(int(d) for d in dims.replace(" ", "").split(","))
        except ValueError:
            raise UsageError(f"bad ATC input shape {item!r}: dimensions must be integers") from None
    return shapes


def _flag_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class AtcOptions:
    """One ATC compilation. ``None`` leaves an option out of the command (ATC's default applies).

    Attributes:
        model: the ONNX file.
        output: the om path *without* ``.om`` (ATC appends it).
        soc_version: the chip, e.g. ``Ascend310P3`` (``npu-smi info`` shows it).
        framework: 5 for ONNX.
        input_format: ``NCHW`` / ``ND`` / ...
        input_shape: ``{name: dims}`` or the rendered ``name:1,3,224,224`` string.
        out_nodes: ``("Resize_317:0",)`` or ONNX output names; sets the output order and prunes the rest.
        log: debug / info / warning / error / null.
        precision_mode: e.g. ``force_fp16`` (ATC's inference default), ``allow_mix_precision``.
        op_select_implmode: high_performance / high_precision (``*_for_all`` variants).
        optypelist_for_implmode: the Ascend IR op types ``op_select_implmode`` applies to.
        fusion_switch_file: a JSON switching graph / UB fusion passes off.
        insert_op_conf: an AIPP config file.
        enable_small_channel: 1 to use C04 for 3-channel inputs (with AIPP).
        dynamic_batch_size: batch sizes of a dynamic-batch om (with ``-1`` in input_shape).
        auto_tune_mode: ``RL,GA``; CANN before 6.0.1 only, with TUNE_BANK_PATH set.
        output_type: FP32 / FP16 / UINT8.
        keep_dtype: a file of ops that keep their precision.
        extra: any other ``--key=value`` pairs, rendered in order after the named ones.
        atc: the executable.
    """

    model: str
    output: str
    soc_version: str
    framework: int = FRAMEWORK_ONNX
    input_format: str | None = "NCHW"
    input_shape: Shapes | str | None = None
    out_nodes: tuple[str, ...] | None = None
    log: str | None = None
    precision_mode: str | None = None
    op_select_implmode: str | None = None
    optypelist_for_implmode: tuple[str, ...] | None = None
    fusion_switch_file: str | None = None
    insert_op_conf: str | None = None
    enable_small_channel: int | None = None
    dynamic_batch_size: tuple[int, ...] | None = None
    auto_tune_mode: str | None = None
    output_type: str | None = None
    keep_dtype: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    atc: str = "atc"

    def __post_init__(self) -> None:
        if not self.soc_version:
            raise UsageError("ATC needs a --soc (soc_version), e.g. Ascend310P3; `npu-smi info` shows the chip")
        if self.log is not None and self.log not in LOG_LEVELS:
            raise UsageError(f"ATC --log must be one of {', '.join(LOG_LEVELS)}, got {self.log!r}")
        if self.precision_mode is not None and self.precision_mode not in PRECISION_MODES:
            raise UsageError(f"unknown ATC precision_mode {self.precision_mode!r} "
                             f"(known: {', '.join(PRECISION_MODES)})")
        if self.op_select_implmode is not None and self.op_select_implmode not in IMPLMODES:
            raise UsageError(f"unknown ATC op_select_implmode {self.op_select_implmode!r} "
                             f"(known: {', '.join(IMPLMODES)})")
        if self.optypelist_for_implmode and not self.op_select_implmode:
            raise UsageError("ATC optypelist_for_implmode needs op_select_implmode")
        if self.auto_tune_mode is not None and self.auto_tune_mode.replace(" ", "") not in AUTO_TUNE_MODES:
            raise UsageError(f"ATC auto_tune_mode must be one of {', '.join(AUTO_TUNE_MODES)}, "
                             f"got {self.auto_tune_mode!r}")
        if self.dynamic_batch_size is not None and (
                not self.dynamic_batch_size or any(int(b) < 1 for b in self.dynamic_batch_size)):
            raise UsageError(f"ATC dynamic_batch_size needs positive batch sizes, got {self.dynamic_batch_size!r}")
        if self.output.endswith(".om"):
            raise UsageError(f"ATC --output is a prefix; ATC appends .om itself (got {self.output!r})")

    @property
    def om_path(self) -> str:
        """The file ATC writes."""
        return f"{self.output}.om"

    def options(self) -> list[tuple[str, str]]:
        """The ``(name, value)`` pairs in command-line order."""
        named: list[tuple[str, object]] = [
            ("framework", self.framework), ("model", self.model), ("output", self.output),
            ("input_format", self.input_format),
            ("input_shape", format_input_shape(self.input_shape) if self.input_shape is not None else None),
            ("out_nodes", ";".join(self.out_nodes) if self.out_nodes else None),
            ("dynamic_batch_size", self.dynamic_batch_size),
            ("log", self.log), ("soc_version", self.soc_version), ("precision_mode", self.precision_mode),
            ("op_select_implmode", self.op_select_implmode),
            ("optypelist_for_implmode", self.optypelist_for_implmode),
            ("fusion_switch_file", self.fusion_switch_file), ("insert_op_conf", self.insert_op_conf),
            ("enable_small_channel", self.enable_small_channel), ("output_type", self.output_type),
            ("keep_dtype", self.keep_dtype),
            ("auto_tune_mode", self.auto_tune_mode.replace(" ", "") if self.auto_tune_mode else None),
        ]
        out = [(k, _flag_value(v)) for k, v in named if v is not None]
        out += [(k, _flag_value(v)) for k, v in self.extra]
        return out

    def argv(self) -> list[str]:
        """The exact command, ``--key=value`` style as in the guides."""
        return [self.atc, *(f"--{k}={v}" for k, v in self.options())]


def atc_options(model: str, output: str, soc_version: str, settings: Mapping[str, object] | None = None,
                **overrides: object) -> AtcOptions:
    """AtcOptions from a recipe's ``atc`` dict (ATC option names as keys); unknown keys go to ``extra``.

    Keys that are not ATC options of the command itself (``soc_version`` defaults, notes)
    are skipped: ``soc``/``soc_version`` is only a default for ``soc_version``.
    """
    known = {f for f in AtcOptions.__dataclass_fields__} - {"extra", "model", "output", "soc_version"}
    fields: dict[str, object] = {}
    extra: list[tuple[str, str]] = []
    merged = {**(settings or {}), **overrides}
    for key, value in merged.items():
        key = key.lstrip("-").replace("-", "_")
        if value is None or key in ("soc", "soc_version", "model", "output", "notes", "note", "framework_name"):
            continue
        if key in known:
            if key in ("out_nodes", "optypelist_for_implmode", "dynamic_batch_size") and isinstance(value, str):
                value = tuple(v for v in re.split(r"[;,]" if key != "out_nodes" else ";", value) if v)
            elif isinstance(value, list):
                value = tuple(value)
            fields[key] = value
        else:
            extra.append((key, _flag_value(value)))
    return AtcOptions(model=model, output=output, soc_version=soc_version, extra=tuple(extra), **fields)


def om_json_argv(om: str, json_path: str, atc: str = "atc") -> list[str]:
    """``atc --mode=1 --om=x.om --json=x.json``: dump a compiled om (op list, atc_cmdline) to JSON."""
    return [atc, "--mode=1", f"--om={om}", f"--json={json_path}"]


def warnings(output: str) -> list[str]:
    """ATC's coded warnings (``W11001: Op [Slice_29] does not hit ...``) in order."""
    return [f"{m.group(1)}: {m.group(2).strip()}" for m in _WARNING.finditer(output)]


@dataclass(frozen=True)
class AtcResult:
    """A finished compilation: the om written, the run, ATC's coded warnings."""

    om_path: Path
    run: ToolRun
    warnings: tuple[str, ...]


def step(options: AtcOptions, description: str, *, batch: int | None = None, build: str | None = None,
         group: str = "", env: tuple[tuple[str, str], ...] = (), makedirs: tuple[str, ...] = (),
         cwd: str | None = None, executable: str | os.PathLike | None = None) -> Step:
    """The plan step of one ATC compilation: success needs exit 0, ``ATC run success`` and a non-empty om."""
    argv = options.argv()
    if executable is not None:
        argv[0] = str(executable)
    return Step(tuple(argv), description, argv[0] if executable is not None else "atc", env=env, cwd=cwd,
                produces=(options.om_path,), success_line=SUCCESS_LINE, failure_line=FAILURE_LINE, group=group,
                makedirs=makedirs, info=StepInfo("atc", batch=batch, build=build, om=options.om_path),
                required_files=(options.om_path,))


def run_atc(options: AtcOptions, *, executable: str | os.PathLike | None = None,
            env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
            timeout: float | None = None, log_path: str | os.PathLike | None = None) -> AtcResult:
    """Compile with ATC alone: :func:`step` run as a plan runs it.

    Raises:
        ToolNotFoundError: atc cannot be run.
        ToolError: ATC failed (with its E-code), timed out, or wrote no om.
    """
    from ..plan import run_step

    one = step(options, f"compile {options.model}", cwd=str(cwd) if cwd is not None else None,
               executable=executable)
    run = run_step(one, env=env, timeout=timeout, log_path=log_path)
    return AtcResult(om_path=Path(cwd or ".") / options.om_path, run=run, warnings=tuple(warnings(run.output)))


def count_om_ops(json_path: str | os.PathLike) -> Counter[str]:
    """Op-type counts of an ``atc --mode=1`` JSON dump (``graph[*].op[*].type``): TransData without a device.

    Raises:
        ToolOutputError: the file is not JSON or has no graph op list.
    """
    path = Path(json_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolOutputError(f"cannot read ATC JSON dump {path}: {exc}") from None
    graphs = data.get("graph") if isinstance(data, dict) else None
    if not isinstance(graphs, list):
        raise ToolOutputError(f"{path} has no 'graph' list: not an `atc --mode=1` dump")
    counts: Counter[str] = Counter()
    for graph in graphs:
        for op in graph.get("op", []) if isinstance(graph, dict) else []:
            if isinstance(op, dict) and op.get("type"):
                counts[str(op["type"])] += 1
    return counts
