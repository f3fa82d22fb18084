"""The model side of the vendor-tool verbs (compile, tune --aoe, bench --target ais-bench|trtexec).

A MODEL is a zoo name or an .onnx path. A zoo model is exported and gets its recipe's
default passes before any vendor tool sees it; in a dry run nothing is exported (torch
may be missing): the plan names ``<workdir>/<name>.onnx`` and starts with the
``surgery apply`` command that would produce it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.tools.ascend.plan import Step

from surgery.errors import ModelLoadError, UsageError
from surgery.modelref import zoo_recipes
from surgery.recipe import Recipe
from surgery.shapes import Shape, parse_shapes


@dataclass
class VendorModel:
    """An ONNX ready for a vendor tool (or planned to be).

    Attributes:
        name: the file prefix (zoo name, or the file's stem).
        onnx: where the ONNX is (or will be written).
        batches: batch sizes to build or measure.
        shapes: batch → {input: dims}.
        dynamic: input names whose batch axis is dynamic (only those get trtexec --shapes).
        recipe: the zoo recipe, if any.
        digest: sha256 of the ONNX; None while it is only planned.
        prelude: steps to run first (the export of a zoo model in a dry run).
        notes: what the plan should say about the model.
    """

    name: str
    onnx: Path
    batches: list[int]
    shapes: dict[int, dict[str, tuple[int, ...]]]
    dynamic: set[str] = field(default_factory=set)
    recipe: Recipe | None = None
    digest: str | None = None
    prelude: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_batch_list(text: str | None, default: Sequence[int]) -> list[int]:
    """``"1,4,8"`` → [1, 4, 8]; ``None`` → ``default``."""
    if text is None:
        return list(default)
    out: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) < 1:
            raise UsageError(f"bad batch size {item!r}: expected positive integers such as 1,4,8,16")
        if int(item) in out:
            raise UsageError(f"batch size {item} given twice")
        out.append(int(item))
    if not out:
        raise UsageError("no batch sizes given (e.g. --batch 1,4,8,16)")
    return out


def is_zoo_name(model: str) -> bool:
    """A zoo model name that is not also a file in the current folder."""
    return model in zoo_recipes() and not Path(model).exists()


def _with_batch(shape: Sequence[int | str], batch: int, given: Shape | None, name: str) -> tuple[int, ...]:
    dims = list(given if given is not None else shape)
    if not dims:
        return ()
    if given is None:
        dims[0] = batch
    rest = [d for d in dims[1:] if not isinstance(d, int) or d <= 0]
    if rest:
        raise UsageError(f"input {name!r} has dynamic dimensions besides the batch ({shape}); give them with "
                         f"--input-shapes {name}:{batch}x...")
    if not isinstance(dims[0], int) or dims[0] <= 0:
        dims[0] = batch
    return tuple(int(d) for d in dims)


def prepare_model(model: str, *, workdir: str | os.PathLike, batch: str | None, input_shapes: Sequence[str] = (),
                  dry_run: bool, default_batches: Sequence[int] = (1,), passes: bool = True) -> VendorModel:
    """Resolve MODEL into an ONNX path, batch sizes and input shapes per batch.

    A zoo model in a real run is exported and its recipe's passes applied (verified) into
    ``<workdir>/<name>.onnx``; in a dry run only planned.

    Raises:
        ModelLoadError: a path that does not exist or is not ONNX.
        UsageError: bad batch sizes, or dynamic dimensions without ``--input-shapes``.
    """
    given = parse_shapes(list(input_shapes)) if input_shapes else {}
    recipes = zoo_recipes()
    work = Path(workdir)
    if is_zoo_name(model):
        recipe = recipes[model]
        batches = parse_batch_list(batch, recipe.batches or default_batches)
        onnx_path = work / f"{recipe.name}.onnx"
        shapes = {b: {name: _with_batch(dims, b, given.get(name), name)
                      for name, dims in recipe.input_shapes(b).items()} for b in batches}
        dynamic = {i.name for i in recipe.inputs if i.shape and i.shape[0] == "N"} if recipe.dynamic_batch else set()
        vm = VendorModel(name=recipe.name, onnx=onnx_path, batches=batches, shapes=shapes, dynamic=dynamic,
                         recipe=recipe)
        pass_names = [s.name for s in recipe.default_passes] if passes else []
        argv = ["surgery", "apply", recipe.name, "-o", str(onnx_path)]
        if not pass_names:
            argv = ["surgery", "export", recipe.name, "-o", str(onnx_path)]
        how = f"the recipe's passes ({', '.join(pass_names)})" if pass_names else "no passes"
        if dry_run:
            vm.prelude.append(Step(tuple(argv), f"export {recipe.name} (needs torch), apply {how}", "internal",
                                   produces=(str(onnx_path),), meta={"kind": "export"}))
            vm.notes.append(f"{onnx_path} would be exported first (torch needed) with {how}")
        else:
            vm.digest = export_zoo_model(recipe, onnx_path, apply_passes=passes)
        return vm
    path = Path(model)
    if not path.exists():
        close = [n for n in recipes if n.lower() == model.lower()]
        hint = f" (did you mean the zoo model {close[0]!r}?)" if close else ""
        raise ModelLoadError(f"model not found: {model}{hint}")
    from surgery.graph import load_model_file

    loaded = load_model_file(path)
    batches = parse_batch_list(batch, default_batches)
    inits = {i.name for i in loaded.model.graph.initializer}
    inputs: dict[str, tuple[int | str, ...]] = {}
    for value in loaded.model.graph.input:
        if value.name in inits:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                     for d in value.type.tensor_type.shape.dim)
        inputs[value.name] = dims
    unknown = set(given) - set(inputs)
    if unknown:
        raise UsageError(f"--input-shapes names no input of {path.name}: {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(inputs)})")
    shapes = {b: {name: _with_batch(dims, b, given.get(name), name) for name, dims in inputs.items()}
              for b in batches}
    dynamic = {n for n, d in inputs.items() if d and not (isinstance(d[0], int) and d[0] > 0)}
    static = {n: d[0] for n, d in inputs.items() if n not in dynamic and d}
    vm = VendorModel(name=_stem(path), onnx=path, batches=batches, shapes=shapes, dynamic=dynamic,
                     digest=loaded.digest)
    for name, fixed in static.items():
        others = [b for b in batches if b != fixed and name not in given]
        if others:
            vm.notes.append(f"input {name!r} has a static batch of {fixed}; batch {', '.join(map(str, others))} "
                            f"asks ATC/trtexec to override it (re-export with a dynamic batch, or "
                            f"`surgery apply {path} --pass fix_shapes`)")
    return vm


def export_zoo_model(recipe: Recipe, out: Path, *, apply_passes: bool = True) -> str:
    """Export a zoo model, apply its recipe's default passes with verification, save it; its digest."""
    from surgery.apply import apply
    from surgery.graph import load_model_file, save_model
    from surgery.modelref import resolve_model

    ref = resolve_model(recipe.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = [(s.name, dict(s.options)) for s in recipe.default_passes] if apply_passes else []
    if not steps:
        saved = save_model(load_model_file(ref.path).model, out)
        return saved.digest
    result = apply(ref.path, steps, verify=True, samples=1)
    return save_model(result.model, out).digest


def _stem(path: Path) -> str:
    return path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.stem


def recipe_settings(recipe: Recipe | None, attribute: str) -> dict[str, Any]:
    """A recipe's ``atc`` / ``aoe`` / ``trtexec`` dict (empty without a recipe)."""
    value: Mapping[str, Any] | None = getattr(recipe, attribute, None) if recipe is not None else None
    return dict(value or {})
