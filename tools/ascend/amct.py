"""AMCT for ONNX (``amct_onnx``, the Ascend Model Compression Toolkit): post-training INT8 calibration.

``AmctOptions.argv()`` renders the command CANN's documentation and samples type::

    amct_onnx calibration --model resnet101.onnx --save_path ./result/resnet101
        --input_shape "image:32,3,224,224" --data_dir "./calibration_bin" --data_types "float32"

- ``--save_path`` is a path *prefix*: AMCT writes ``<prefix>_deploy_model.onnx`` (the
  quantized model ATC compiles: AscendQuant/AscendDequant ops), ``<prefix>_fake_quant_model.onnx``
  (the same quantization in standard ops, for checking accuracy on onnxruntime) and
  ``<prefix>_quant.json`` (the node mapping), and logs to ``./amct_log/amct_onnx.log``.
- ``--data_dir`` holds headerless ``.bin`` files of the input's dtype, each one batch of
  ``--input_shape``, taken in ascending lexicographic order; a model with several inputs has
  one folder per input, joined with ``;`` (as ``--input_shape`` and ``--data_types`` are).
- ``--batch_num`` (batches to calibrate on, default 1) cannot be combined with
  ``--calibration_config`` (a ``.cfg`` simple config, which then holds ``batch_num`` itself,
  ``skip_layers`` and the IFMR/ARQ settings); ``--evaluator`` names a Python file with an
  ``Evaluator`` class (accuracy-based calibration).

Where this comes from: the ``amct_onnx calibration --help`` usage of CANN 7.0.0 as quoted in
public write-ups, CANN's command-line parameter table (the ``--batch_num`` /
``--calibration_config`` exclusion), and Ascend/samples ``9_amct/amct_onnx/cmd``
(``run_calibration.sh``, the ``output_deploy_model.onnx`` / ``output_fake_quant_model.onnx``
results). AMCT's Python API logs ``INFO - [AMCT]:[Utils]: The model file is saved in <path>``
for each model it writes (Ascend/samples READMEs). Not confirmed from a run here (no CANN):
that the command-line tool prints the same lines, and its failure text; so success is
judged by the exit code and the deploy model on disk, and an ``ERROR - [AMCT]`` log line
(AMCT's log format with level ERROR) marks a failure even with exit code 0.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from surgery.errors import UsageError
from surgery.shapes import InputSpec, model_inputs
from surgery.targets.model import TargetModel
from surgery.targets.plan import Step, StepInfo

from ..runner import ToolOutputError, ToolRun
from .atc import Shapes, format_input_shape, parse_input_shape

TOOL = "amct_onnx"
DATA_TYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
FAILURE_LINE = re.compile(r"ERROR\s*-\s*\[AMCT\]")
_SAVED = re.compile(r"The model file is saved in\s+(\S+\.onnx)")
DEPLOY_SUFFIX = "_deploy_model.onnx"
FAKE_QUANT_SUFFIX = "_fake_quant_model.onnx"
QUANT_JSON_SUFFIX = "_quant.json"


def _joined(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ";".join(str(v) for v in value)


@dataclass(frozen=True)
class AmctOptions:
    """One ``amct_onnx calibration`` run. ``None`` leaves an option out (AMCT's default applies).

    Attributes:
        model: the float ONNX file.
        save_path: the result prefix, e.g. ``out/icnet`` (AMCT appends ``_deploy_model.onnx`` ...).
        input_shape: ``{name: dims}`` or the rendered ``name:1,3,224,224`` (one batch of calibration data).
        data_dir: the ``.bin`` folder, one per input in ``input_shape`` order.
        data_types: the dtype of each input's files (``float32``).
        batch_num: how many batches to calibrate on (AMCT's default 1).
        calibration_config: a ``.cfg`` simple config (then ``batch_num`` goes in it, not here).
        evaluator: a Python file with an ``Evaluator`` (accuracy-based calibration).
        amct: the executable.
    """

    model: str
    save_path: str
    input_shape: Shapes | str | None = None
    data_dir: str | tuple[str, ...] | None = None
    data_types: str | tuple[str, ...] | None = None
    batch_num: int | None = None
    calibration_config: str | None = None
    evaluator: str | None = None
    amct: str = TOOL

    def __post_init__(self) -> None:
        if not self.save_path or self.save_path.endswith(("/", os.sep)):
            raise UsageError(f"AMCT --save_path is a prefix such as ./result/model, got {self.save_path!r}")
        if self.save_path.endswith(".onnx"):
            raise UsageError(f"AMCT --save_path is a prefix; AMCT appends {DEPLOY_SUFFIX} (got {self.save_path!r})")
        if self.batch_num is not None and (isinstance(self.batch_num, bool) or int(self.batch_num) < 1):
            raise UsageError(f"AMCT --batch_num must be a positive number of batches, got {self.batch_num!r}")
        if self.batch_num is not None and self.calibration_config is not None:
            raise UsageError("AMCT --batch_num cannot be combined with --calibration_config: put batch_num in the "
                             ".cfg file")
        if self.evaluator is None and (self.input_shape is None or self.data_dir is None):
            raise UsageError("AMCT calibration needs --input_shape and --data_dir (or an --evaluator script)")
        types = _split(self.data_types)
        unknown = [t for t in types if t not in DATA_TYPES]
        if unknown:
            raise UsageError(f"AMCT --data_types {unknown[0]!r} is not one of {', '.join(DATA_TYPES)}")
        if self.input_shape is not None:
            count = len(self.shapes())
            for name, items in (("--data_dir", _split(self.data_dir)), ("--data_types", types)):
                if items and len(items) != count:
                    raise UsageError(f"AMCT {name} gives {len(items)} entries for {count} inputs in --input_shape "
                                     "(one per input, ';'-separated)")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``input_shape`` as ``{name: dims}``."""
        if self.input_shape is None:
            return {}
        text = self.input_shape if isinstance(self.input_shape, str) else format_input_shape(self.input_shape)
        return parse_input_shape(text)

    @property
    def deploy_model(self) -> str:
        """The quantized model for ATC."""
        return self.save_path + DEPLOY_SUFFIX

    @property
    def fake_quant_model(self) -> str:
        """The same quantization in standard ONNX ops (runs on onnxruntime)."""
        return self.save_path + FAKE_QUANT_SUFFIX

    @property
    def quant_json(self) -> str:
        return self.save_path + QUANT_JSON_SUFFIX

    def options(self) -> list[tuple[str, str]]:
        """The ``(flag, value)`` pairs in command-line order."""
        shape = None
        if self.input_shape is not None:
            shape = self.input_shape if isinstance(self.input_shape, str) else format_input_shape(self.input_shape)
        named: list[tuple[str, object]] = [
            ("model", self.model), ("save_path", self.save_path), ("input_shape", shape),
            ("data_dir", _joined(self.data_dir)), ("data_types", _joined(self.data_types)),
            ("calibration_config", self.calibration_config), ("evaluator", self.evaluator),
            ("batch_num", self.batch_num),
        ]
        return [(k, str(v)) for k, v in named if v is not None]

    def argv(self) -> list[str]:
        """The exact command: ``amct_onnx calibration --flag value ...`` (the documented spelling)."""
        out = [self.amct, "calibration"]
        for flag, value in self.options():
            out += [f"--{flag}", value]
        return out


def _split(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(";") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i.strip()]


def step(options: AmctOptions, description: str, *, group: str = "", cwd: str | None = None,
         makedirs: tuple[str, ...] = (), executable: str | os.PathLike | None = None) -> Step:
    """The plan step of one calibration: exit 0, no ``ERROR - [AMCT]`` line, and a non-empty deploy model."""
    argv = options.argv()
    if executable is not None:
        argv[0] = str(executable)
    parent = str(Path(options.save_path).parent)
    dirs = tuple(dict.fromkeys((*makedirs, *([parent] if parent not in ("", ".") else []))))
    return Step(tuple(argv), description, argv[0] if executable is not None else TOOL, cwd=cwd,
                produces=(options.deploy_model, options.fake_quant_model), failure_line=FAILURE_LINE, group=group,
                makedirs=dirs, info=StepInfo("amct", build="int8"), required_files=(options.deploy_model,))


@dataclass(frozen=True)
class AmctResult:
    """What a finished calibration left: the deploy model for ATC, the fake-quant model, the mapping, the log's list."""

    deploy_model: Path
    fake_quant_model: Path | None
    quant_json: Path | None
    saved: tuple[str, ...]


def read_result(run: ToolRun | str, options: AmctOptions, cwd: str | os.PathLike | None = None) -> AmctResult:
    """The files a calibration wrote (checked on disk), and the models its log says it saved.

    Raises:
        ToolOutputError: no deploy model where ``save_path`` says (nor in the log's saved list).
    """
    output = run if isinstance(run, str) else run.output
    base = Path(cwd or ".")
    saved = tuple(_SAVED.findall(output))
    deploy = base / options.deploy_model
    if not _nonempty(deploy):
        logged = next((base / s for s in saved if s.endswith(DEPLOY_SUFFIX) and _nonempty(base / s)), None)
        if logged is None:
            raise ToolOutputError(f"AMCT wrote no deploy model at {deploy}"
                                  + (f" (its log names {', '.join(saved)})" if saved else ""))
        deploy = logged
    prefix = str(deploy)[: -len(DEPLOY_SUFFIX)]
    fake, mapping = Path(prefix + FAKE_QUANT_SUFFIX), Path(prefix + QUANT_JSON_SUFFIX)
    return AmctResult(deploy_model=deploy, fake_quant_model=fake if _nonempty(fake) else None,
                      quant_json=mapping if _nonempty(mapping) else None, saved=saved)


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


# ---------------------------------------------------------------------------------------
# the INT8 step of a compile plan: calibration data, then AMCT; ATC then compiles the deploy model

DEFAULT_SAMPLES = 8  # calibration batches AMCT runs (its own default is 1)
_MANIFEST = "calibration.json"


@dataclass(frozen=True)
class Int8Step:
    """The AMCT step of a plan, the model ATC compiles after it, and what the plan should say."""

    step: Step
    options: AmctOptions
    notes: tuple[str, ...]


def calibration_step(model: TargetModel, out_dir: str | os.PathLike, *, data: str | None = None,
                     samples: int = DEFAULT_SAMPLES, seed: int = 0) -> Int8Step:
    """AMCT calibration of ``model`` at its first batch size, on ``data`` or on generated inputs written now.

    Without ``data``, ``samples`` batches are generated in the model's input distribution (a
    zoo recipe's preprocessing; see :mod:`surgery.calibration`) and written as ``.bin`` files
    under ``<out_dir>/amct/calibration`` (again only when missing), so the folder can travel
    with the plan to the NPU host.

    Raises:
        UsageError: ``data`` that is not a folder here, or inputs that cannot be generated.
    """
    from surgery import validate

    samples = validate.count(samples, "--calib-samples", maximum=100_000)
    batch = model.batches[0]
    shapes = model.shapes[batch]
    specs = _input_specs(model)
    root = Path(out_dir) / "amct"
    notes: list[str] = []
    if data is not None:
        if not Path(data).is_dir():
            raise UsageError(f"--calib {data} is not a folder (AMCT reads .bin files, one folder per input)")
        dirs = [str(Path(data) / s.name) for s in specs] if len(specs) > 1 else [str(data)]
        notes.append(f"AMCT calibrates on {data} ({samples} batches of {_describe_shapes(shapes)}; files sorted)")
    else:
        written = _write_generated(specs, shapes, root / "calibration", samples, seed, model)
        dirs = [str(d) for d in written]
        notes.append(f"calibration data: {samples} generated batches of {_describe_shapes(shapes)} in "
                     f"{root / 'calibration'} (synthetic images, not real data: give --calib DIR for that; copy the "
                     "folder with the plan)")
    options = AmctOptions(model=str(model.onnx), save_path=str(root / model.name), input_shape=shapes,
                          data_dir=tuple(dirs), data_types=tuple(_data_type(s.dtype) for s in specs),
                          batch_num=samples)
    notes.append(f"ATC compiles AMCT's deploy model {options.deploy_model}; {options.fake_quant_model} runs on "
                 "onnxruntime to check the int8 accuracy (surgery eval)")
    described = f"AMCT INT8 calibration of {model.name} at batch {batch} → {options.deploy_model}"
    return Int8Step(step(options, described, makedirs=(str(root),)), options, tuple(notes))


def _input_specs(model: TargetModel) -> list[InputSpec]:
    if model.recipe is not None:
        return list(model.recipe.inputs)
    from surgery.graph import load_model_file

    return model_inputs(load_model_file(model.onnx, load_external_data=False).model)


def _data_type(dtype: object) -> str:
    import numpy as np

    name = np.dtype(dtype).name
    if name not in DATA_TYPES:
        raise UsageError(f"AMCT cannot read calibration data of dtype {name}")
    return name


def _describe_shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{n}:{'x'.join(map(str, s))}" for n, s in shapes.items())


def _write_generated(specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], folder: Path, samples: int,
                     seed: int, model: TargetModel) -> list[Path]:
    """Generated calibration batches as AMCT's .bin files; kept when a manifest says they are these already."""
    import json

    from surgery.calibration import Generated, distribution_for_recipe, write_bins

    distribution = distribution_for_recipe(model.recipe)
    wanted = {"shapes": {k: list(v) for k, v in shapes.items()}, "samples": samples, "seed": seed,
              "distribution": distribution}
    dirs = [folder / s.name for s in specs] if len(specs) > 1 else [folder]
    manifest = folder.parent / _MANIFEST  # beside the data: AMCT reads every file in a data folder
    try:
        if json.loads(manifest.read_text(encoding="utf-8")) == wanted:
            return dirs
    except (OSError, ValueError):
        pass
    feeds = list(Generated(distribution, seed).feeds(specs, shapes, samples))
    write_bins(feeds, folder, specs)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted), encoding="utf-8")
    return dirs
