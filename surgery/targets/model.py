"""The model a target works on: a file, or a zoo model exported (and passed) for it.

A MODEL is a zoo name or an .onnx path, resolved once for every target through
:func:`surgery.modelref.resolve_model` with the same zoo options (``--checkpoint``,
``--variant``). For vendor tools a zoo model also gets its recipe's default passes
(verified) into ``<workdir>/<name>.onnx``; in a dry run nothing is exported (torch may be
missing): the plan names that file and starts with the ``surgery apply`` command that
would produce it. Input shapes per batch come from :func:`surgery.shapes.shapes_at`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from surgery.errors import ModelLoadError
from surgery.modelref import Zoo, ZooOptions, resolve_model
from surgery.pass_infra import Pass
from surgery.recipe import Recipe
from surgery.shapes import Shape, is_static, model_inputs, shapes_at
from surgery.targets.plan import Step, StepInfo


@dataclass
class TargetModel:
    """An ONNX ready for a target (or planned to be).

    Attributes:
        name: the file prefix (zoo name, or the file's stem).
        onnx: where the ONNX is (or will be written).
        batches: batch sizes to build or measure.
        shapes: batch → {input: dims}.
        dynamic: input names whose batch axis is dynamic (only those get trtexec --shapes).
        recipe: the zoo recipe, if any.
        digest: sha256 of the ONNX; None while it is only planned.
        nbytes: its size in bytes, when loaded.
        prelude: steps to run first (the export of a zoo model in a dry run).
        notes: what the plan should say about the model.
    """

    name: str
    onnx: Path
    batches: tuple[int, ...]
    shapes: dict[int, dict[str, tuple[int, ...]]]
    dynamic: set[str] = field(default_factory=set)
    recipe: Recipe | None = None
    digest: str | None = None
    nbytes: int | None = None
    prelude: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def settings(self, tool: str) -> dict:
        """The recipe's ``atc`` / ``aoe`` / ``trtexec`` dict (empty without a recipe)."""
        return dict(getattr(self.recipe, tool, None) or {}) if self.recipe is not None else {}


@dataclass(frozen=True)
class ModelSpec:
    """What the user named: a path or zoo name, with the zoo options that export it."""

    arg: str
    zoo_options: ZooOptions = field(default_factory=ZooOptions)

    @property
    def stem(self) -> str:
        return file_stem(Path(self.arg))


def file_stem(path: Path) -> str:
    name = path.name
    for suffix in (".onnx", ".om"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def resolve_target_model(spec: ModelSpec, *, zoo: Zoo, registry: Mapping[str, type[Pass]] | None,
                         workdir: str | os.PathLike, batches: Sequence[int] | None,
                         input_shapes: Mapping[str, Shape] | None = None, dry_run: bool,
                         default_batches: Sequence[int] = (1,), apply_recipe: bool = True) -> TargetModel:
    """Resolve a MODEL into an ONNX path, batch sizes and input shapes per batch.

    Args:
        spec: the MODEL argument and its zoo options.
        zoo: the model zoo (handed in by the caller).
        registry: the pass registry for a zoo recipe's default passes.
        workdir: where an exported zoo model is written.
        batches: batch sizes asked for; None takes the recipe's, else ``default_batches``.
        input_shapes: ``--input-shapes``.
        dry_run: plan the export instead of doing it.
        default_batches: batch sizes for a file with no recipe.
        apply_recipe: apply a zoo recipe's default passes.

    Raises:
        ModelLoadError: a path that does not exist or is not ONNX.
        UsageError: zoo options for a file, or shapes that cannot be resolved.
    """
    given = dict(input_shapes or {})
    work = Path(workdir)
    if zoo.is_name(spec.arg):
        recipe = zoo.recipes[spec.arg]
        chosen = tuple(batches or recipe.batches or default_batches)
        onnx_path = work / f"{recipe.name}.onnx"
        shapes = {b: shapes_at(recipe.inputs, b, given) for b in chosen}
        dynamic = {i.name for i in recipe.inputs if i.shape and not is_static(i.shape[0])} \
            if recipe.dynamic_batch else set()
        model = TargetModel(name=recipe.name, onnx=onnx_path, batches=chosen, shapes=shapes, dynamic=dynamic,
                            recipe=recipe)
        steps = [(s.name, dict(s.options)) for s in recipe.default_passes] if apply_recipe else []
        variants = spec.zoo_options.chosen_variants(recipe)
        guided = {k: v for k, v in variants.items() if k not in dict(spec.zoo_options.variants)}
        if guided:
            model.notes.append(f"{recipe.name} built with {', '.join(f'{k}={v}' for k, v in guided.items())}: "
                               "the graph its guide compiled")
        published = {b for col in recipe.published.throughput.values() for b in col}
        unpublished = [b for b in chosen if published and b not in published]
        if unpublished:
            model.notes.append(f"batch {', '.join(map(str, unpublished))}: the guide published no figure for it "
                               f"(its batches: {', '.join(map(str, sorted(published)))}); no reference to compare")
        if dry_run:
            argv = ["surgery", "apply" if steps else "export", recipe.name,
                    *_zoo_flags(spec.zoo_options, variants), "-o", str(onnx_path)]
            how = f"the recipe's passes ({', '.join(n for n, _ in steps)})" if steps else "no passes"
            model.prelude.append(Step(tuple(argv), f"export {recipe.name} (needs torch), apply {how}", "internal",
                                      produces=(str(onnx_path),), info=StepInfo("export")))
            model.notes.append(f"{onnx_path} would be exported first (torch needed) with {how}")
        else:
            model.digest = export_for_target(spec, zoo, registry, steps, onnx_path)
        return model
    ref = resolve_model(spec.arg, zoo, spec.zoo_options)
    from surgery.graph import load_model_file

    loaded = load_model_file(ref.path)
    specs = model_inputs(loaded.model)
    chosen = tuple(batches or default_batches)
    shapes = {b: shapes_at(specs, b, given) for b in chosen}
    dynamic = {s.name for s in specs if s.shape and not is_static(s.shape[0])}
    model = TargetModel(name=file_stem(ref.path), onnx=ref.path, batches=chosen, shapes=shapes, dynamic=dynamic,
                        digest=loaded.digest, nbytes=loaded.nbytes)
    for s in specs:
        if s.name in dynamic or not s.shape:
            continue
        others = [b for b in chosen if b != s.shape[0]]
        if others:
            model.notes.append(f"input {s.name!r} has a static batch of {s.shape[0]}; batch "
                               f"{', '.join(map(str, others))} asks the tool to override it (re-export with a "
                               f"dynamic batch, or `surgery apply {ref.path} --pass fix_shapes batch=dynamic`)")
    return model


def _zoo_flags(options: ZooOptions, variants: Mapping[str, str]) -> list[str]:
    flags = ["--checkpoint", options.checkpoint] if options.checkpoint else []
    for key, value in variants.items():
        flags += ["--variant", f"{key}={value}"]
    return flags


def export_for_target(spec: ModelSpec, zoo: Zoo, registry: Mapping[str, type[Pass]] | None,
                      steps: Sequence[tuple[str, dict]], out: Path) -> str:
    """Export a zoo model with its zoo options, apply ``steps`` with verification, save it; its digest."""
    from surgery.apply import apply
    from surgery.graph import load_model_file, save_model

    ref = resolve_model(spec.arg, zoo, spec.zoo_options)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not steps:
        return save_model(load_model_file(ref.path).model, out).digest
    if registry is None:
        raise ModelLoadError(f"{spec.arg}: the recipe's passes need a pass registry")
    result = apply(ref.path, steps, registry=registry, verify=True, samples=1)
    return save_model(result.model, out).digest
