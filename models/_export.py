"""Export a zoo model to ONNX (TorchScript exporter, opset 11), and a content-addressed cache of exports.

Shapes, in order of precedence: ``batch`` (an int: static at that batch; ``"dynamic"``: a
symbolic batch axis ``N``), then ``input_shapes`` (numbers are static; a name in dimension 0,
e.g. ``Nx3x96x96``, makes the batch dynamic), then the recipe's shapes with its
``dynamic_batch`` default. Only the batch axis can be dynamic: the networks' resizes and
pooling bins are traced for one spatial size.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from surgery import __version__ as SURGERY_VERSION
from surgery.atomic import check_output_dir, write_bytes_atomic, write_text_atomic
from surgery.errors import ModelLoadError, UnknownNameError, UsageError, first_line
from surgery.recipe import Recipe

from . import get_recipe, require_torch, resolve_variants
from ._calibrate import CALIBRATION_VERSION
from ._calibrate import calibrate as calibrate_weights
from ._checkpoint import file_digest, load_checkpoint, seed_init

BATCH_AXIS = "N"
OPSETS = range(11, 21)  # what the TorchScript exporter writes; the guides' ATC reads 11
CACHE_ENV = "SURGERY_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/surgery/zoo")

Shape = tuple[int | str, ...]


@dataclass
class ExportResult:
    """One export.

    Attributes:
        path: the ONNX file written.
        recipe: the zoo model's name.
        variants: every variant key with the value used.
        notices: one-line remarks (seeded weights, checkpoint keys dropped, ...).
        checkpoint_digest: sha256 of the checkpoint file, or None for seeded weights.
        torch_version: the torch that exported.
        input_shapes: the exported input shapes (``"N"`` where the batch is dynamic).
        opset: the ONNX opset.
        nodes: node count of the exported graph.
        cached: True when ``resolve_zoo_model`` reused an earlier export.
    """

    path: Path
    recipe: str
    variants: dict[str, str]
    notices: list[str] = field(default_factory=list)
    checkpoint_digest: str | None = None
    torch_version: str = ""
    input_shapes: dict[str, Shape] = field(default_factory=dict)
    opset: int = 11
    nodes: int = 0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["input_shapes"] = {k: list(v) for k, v in self.input_shapes.items()}
        return data


@dataclass(frozen=True)
class ExportPlan:
    """Validated export settings: trace shapes (all numbers), whether the batch is dynamic, variants."""

    recipe: Recipe
    variants: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    dynamic: bool
    opset: int

    def exported_shapes(self) -> dict[str, Shape]:
        return {k: ((BATCH_AXIS, *v[1:]) if self.dynamic else v) for k, v in self.shapes.items()}


def plan_export(name: str, *, variants: Mapping[str, str] | None = None,
                input_shapes: Mapping[str, Sequence[int | str]] | None = None,
                batch: int | str | None = None, opset: int = 11) -> ExportPlan:
    """Check the options of an export and settle its shapes (see the module docstring for precedence).

    Raises:
        UnknownNameError: unknown model, variant or input name.
        UsageError: bad shapes, batch, variant value or opset.
    """
    recipe = get_recipe(name)
    chosen = resolve_variants(recipe, variants)
    if not isinstance(opset, int) or opset not in OPSETS:
        raise UsageError(f"opset must be {OPSETS.start}..{OPSETS.stop - 1} (the guides use 11), got {opset!r}")
    shapes: dict[str, list[int | str]] = {k: list(v) for k, v in recipe.input_shapes(1).items()}
    dynamic = recipe.dynamic_batch
    if input_shapes:
        dynamic = False  # numbers typed are the shapes wanted; a named batch dimension turns it back on
        for key, dims in input_shapes.items():
            if key not in shapes:
                raise UnknownNameError(f"input of {name}", key, shapes)
            dims = list(dims)
            if len(dims) != len(shapes[key]):
                raise UsageError(f"input {key} of {name} has rank {len(shapes[key])} "
                                 f"({'x'.join(map(str, recipe.input_shapes(1)[key]))}), got {len(dims)} dimensions")
            for axis, d in enumerate(dims):
                if isinstance(d, str):
                    if axis != 0:
                        raise UsageError(f"input {key}: only the batch dimension can be dynamic, got {d!r} "
                                         f"in dimension {axis}")
                    dynamic, dims[0] = True, 1
                elif d < 1:
                    raise UsageError(f"input {key}: dimension {axis} must be positive, got {d}")
            shapes[key] = dims
    if batch is not None:
        if batch == "dynamic":
            dynamic = True
        elif isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
            for key, dims in shapes.items():
                if input_shapes and key in input_shapes and isinstance(input_shapes[key][0], int) \
                        and input_shapes[key][0] != batch:
                    raise UsageError(f"batch {batch} contradicts the shape given for {key} "
                                     f"(batch {input_shapes[key][0]})")
                dims[0] = batch
            dynamic = False
        else:
            raise UsageError(f"batch must be a positive number or 'dynamic', got {batch!r}")
    return ExportPlan(recipe=recipe, variants=chosen, shapes={k: tuple(int(d) for d in v) for k, v in shapes.items()},
                      dynamic=dynamic, opset=opset)


def export_model(name: str, out_path: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                 variants: Mapping[str, str] | None = None,
                 input_shapes: Mapping[str, Sequence[int | str]] | None = None,
                 batch: int | str | None = None, opset: int = 11, seed: int = 0,
                 calibrate: bool = True) -> ExportResult:
    """Build zoo model ``name``, load its checkpoint (or seed and calibrate it), and export it to ``out_path``.

    Args:
        name: the zoo model.
        out_path: the ONNX file to write (its folder must exist).
        checkpoint: the upstream weights; without one the weights are seeded random and a notice says so.
        variants: e.g. ``{"ppm": "ascend"}``; unspecified keys take the recipe's defaults.
        input_shapes: ``{input: dims}`` to trace at other sizes than the guide's.
        batch: an int for a static batch, ``"dynamic"`` for a symbolic one, None for the recipe's default.
        opset: the ONNX opset (11 unless you know the target reads another).
        seed: torch's seed for the weights a checkpoint does not set and for the trace input.
        calibrate: without a checkpoint, set BatchNorm statistics and standardise the heads on a few
            generated images (:mod:`surgery.models._calibrate`), so outputs vary like a trained
            network's; False keeps the raw seeded weights (to measure what calibration changes).

    Returns:
        An ExportResult (path, variants, notices, checkpoint digest, torch version, shapes, node count).

    Raises:
        UnknownNameError, UsageError: bad model, variant, shapes, or no torch.
        ModelLoadError: the checkpoint is missing, unreadable or does not fit.
        ModelSaveError: the output folder does not exist.
    """
    plan = plan_export(name, variants=variants, input_shapes=input_shapes, batch=batch, opset=opset)
    out_path = check_output_dir(out_path)
    if checkpoint is not None and not Path(checkpoint).is_file():  # before the seconds a build takes
        raise ModelLoadError(f"checkpoint not found: {checkpoint}")
    torch = require_torch()
    module = importlib.import_module(plan.recipe.module)

    model, notice = seed_init(lambda: module.build(plan.variants), seed)
    notices, digest = [], None
    if checkpoint is None:
        if calibrate:
            try:
                done = calibrate_weights(model, plan.shapes, seed)
            except RuntimeError as exc:  # the network runs here first: a size it cannot take fails here
                raise _cannot_run(plan, exc) from None
            seeded, sep, tail = notice.partition("; ")  # one notice: seeded, calibrated; accuracy means nothing
            notice = f"{seeded}, {done}{sep}{tail}"
        notices.append(notice)
    else:
        report = load_checkpoint(model, checkpoint, drop=getattr(module, "CHECKPOINT_DROP", ()))
        notices += report.notices
        digest = report.digest
    model.eval()

    generator = torch.Generator().manual_seed(seed)
    args = tuple(torch.randn(*shape, generator=generator) for shape in plan.shapes.values())
    data = _to_onnx_bytes(torch, model, args, plan, module)
    write_bytes_atomic(out_path, data)
    return ExportResult(path=Path(out_path), recipe=plan.recipe.name, variants=dict(plan.variants), notices=notices,
                        checkpoint_digest=digest, torch_version=torch.__version__,
                        input_shapes=plan.exported_shapes(), opset=plan.opset, nodes=_count_nodes(data))


def _to_onnx_bytes(torch: Any, model: Any, args: tuple, plan: ExportPlan, module: Any) -> bytes:
    inputs, outputs = list(plan.shapes), list(plan.recipe.outputs)
    dynamic_axes = None
    if plan.dynamic:
        out_axes = module.batch_axes(plan.variants) if hasattr(module, "batch_axes") else {}
        dynamic_axes = {k: {0: BATCH_AXIS} for k in inputs}
        dynamic_axes.update({k: {out_axes.get(k, 0): BATCH_AXIS} for k in outputs})
    buffer = io.BytesIO()
    # the TorchScript exporter warns about its own deprecation and about traced Python ints
    # (our pooling bins and sizes are static on purpose); neither is the user's business
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, args, buffer, dynamo=False, opset_version=plan.opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic_axes, do_constant_folding=True)
        except torch.onnx.errors.OnnxExporterError:
            raise  # an op the exporter cannot write: a bug of ours, not the user's shapes
        except RuntimeError as exc:  # the trace runs the network: a size it cannot take fails here
            raise _cannot_run(plan, exc) from None
    return buffer.getvalue()


def _cannot_run(plan: ExportPlan, exc: BaseException) -> UsageError:
    shapes = ", ".join(f"{k}:{'x'.join(map(str, v))}" for k, v in plan.shapes.items())
    return UsageError(f"{plan.recipe.name} cannot run at {shapes}: {first_line(exc)}")


def _count_nodes(data: bytes) -> int:
    import onnx

    return len(onnx.load_model_from_string(data).graph.node)


# ---------------------------------------------------------------------------
# content-addressed cache


def cache_dir() -> Path:
    """``$SURGERY_CACHE_DIR`` or ``~/.cache/surgery/zoo``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cache_key(plan: ExportPlan, checkpoint_digest: str | None, seed: int, torch_version: str) -> str:
    """sha256 over everything that changes the exported bytes (seeded weights: their calibration's version too)."""
    material = {"recipe": plan.recipe.name, "variants": plan.variants,
                "shapes": {k: list(v) for k, v in plan.exported_shapes().items()},
                "trace_shapes": {k: list(v) for k, v in plan.shapes.items()}, "opset": plan.opset,
                "checkpoint": checkpoint_digest, "seed": seed if checkpoint_digest is None else None,
                "calibration": CALIBRATION_VERSION if checkpoint_digest is None else None,
                "torch": torch_version, "surgery": SURGERY_VERSION}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def resolve_zoo_model(name: str, *, checkpoint: str | os.PathLike | None = None,
                      variants: Mapping[str, str] | None = None,
                      input_shapes: Mapping[str, Sequence[int | str]] | None = None,
                      batch: int | str | None = None, opset: int = 11, seed: int = 0,
                      cache: str | os.PathLike | None = None) -> Path:
    """The ONNX file of zoo model ``name`` for these options, exported once and reused after.

    The key hashes the recipe name, variants, shapes, opset, checkpoint file digest (or the
    seed), torch version and surgery version. Beside ``<name>-<key>.onnx`` lies a ``.json``
    with the ExportResult (notices included).

    Args:
        cache: the cache folder; default ``$SURGERY_CACHE_DIR`` or ``~/.cache/surgery/zoo``.
        Others: as :func:`export_model`.
    """
    plan = plan_export(name, variants=variants, input_shapes=input_shapes, batch=batch, opset=opset)
    torch = require_torch()
    digest = file_digest(checkpoint) if checkpoint is not None and Path(checkpoint).is_file() else None
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    key = cache_key(plan, digest, seed, torch.__version__)
    path = folder / f"{name}-{key[:24]}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    result = export_model(name, path, checkpoint=checkpoint, variants=plan.variants, input_shapes=input_shapes,
                          batch=batch, opset=opset, seed=seed)
    write_text_atomic(path.with_suffix(".json"), json.dumps(result.to_dict(), indent=2) + "\n")
    return path
