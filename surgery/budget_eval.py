"""Budget evaluators from the evaluation package: a zoo model's own task, on generated images or a dataset.

- :class:`RecipeAgreement` (``--budget agreement=0.99`` on a zoo model): how far the model
  after the pass agrees with the model before on the task's own terms, from
  :mod:`surgery.eval.fidelity` (segmentation: mIoU of the label maps vs before; binary
  segmentation: mask IoU; classification: top-1 agreement), on pictures of the recipe's
  dataset kind run through its preprocessing, or on a dataset folder's images.
- :class:`DatasetMetric` (``--budget top1=-0.5``, ``miou=-1.0``, ``iou=-0.5``, ``pixacc=...``): the
  recipe's metric (guide mode) on a labelled dataset folder, in points (percent).
- :func:`evaluator_for` picks one (or :class:`surgery.budget.OutputAgreement` for a model
  with no recipe), for ``surgery apply --budget``; :func:`quantize_candidate` makes
  ``quantize_int8`` a ``surgery tune`` candidate under a budget.

Both follow :class:`surgery.budget.Evaluator`: ``bind(reference)`` gives the scorer of candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from surgery.budget import Budget, BudgetCheck, Evaluator, OutputAgreement, Scorer
from surgery.calibration import source_for
from surgery.errors import UsageError
from surgery.parity import Session
from surgery.pass_infra import Pass
from surgery.search import Candidate
from surgery.shapes import Shape, model_inputs, shapes_at

JUDGE_SEED = 10_000  # judging images differ from calibration's (seed 0 onwards)
# budget metric -> the evaluation package's figure names, first found wins
METRIC_KEYS: dict[str, tuple[str, ...]] = {"top1": ("top1",), "top5": ("top5",), "miou": ("mIoU",),
                                           "iou": ("IoU",), "pixacc": ("pixAcc", "aAcc")}


def _single_input(model: onnx.ModelProto) -> str:
    specs = model_inputs(model)
    if len(specs) != 1:
        raise UsageError(f"the budget feeds one image input; the model has {len(specs)} inputs")
    return specs[0].name


def _infer(model: onnx.ModelProto, wanted: str | int) -> tuple[Session, str, str]:
    from surgery.eval.fidelity import output_name

    session = Session(model)
    return session, _single_input(model), output_name(session.output_names, wanted)


@dataclass
class RecipeAgreement:
    """Task agreement with the model before, measured as ``surgery eval BEFORE AFTER`` measures fidelity.

    Attributes:
        recipe: the zoo recipe (its evaluation spec says the task, classes, output and preprocessing).
        samples: images to judge on.
        seed: the first generated image's seed (keep it apart from calibration's).
        mode: ``guide`` or ``upstream`` preprocessing and threshold.
        data: a dataset folder in the recipe's layout to take images from instead (labels not needed).
        input_shapes: sizes for dynamic input dims.
    """

    recipe: Any
    samples: int = 32
    seed: int = JUDGE_SEED
    mode: str = "guide"
    data: str | None = None
    input_shapes: dict[str, Shape] | None = None
    _feeds: list[tuple[str, np.ndarray]] = field(default_factory=list, repr=False)

    def _task(self) -> Any:
        from surgery.eval.fidelity import TaskSpec

        return TaskSpec(self.recipe, self.mode)

    def _inputs(self, model: onnx.ModelProto) -> list[tuple[str, np.ndarray]]:
        if self._feeds:
            return self._feeds
        task = self._task()
        if self.data is not None:
            from surgery.eval.datasets import open_dataset
            from surgery.eval.preprocess import Preprocessor

            dataset = open_dataset(task.dataset, self.data, labels=False, limit=self.samples)
            pre = Preprocessor(task.preprocessing)
            self._feeds = [(s.id, pre(s.image)[None]) for s in dataset.samples]
        else:
            from surgery.eval.fidelity import generated_feeds

            name = _single_input(model)
            shape = shapes_at(model_inputs(model), None, self.input_shapes)[name]
            self._feeds = generated_feeds(task, shape, self.samples, self.seed)
        if not self._feeds:
            raise UsageError(f"no images to judge the budget on in {self.data}")
        return self._feeds

    def bind(self, reference: onnx.ModelProto) -> Scorer:
        task = self._task()
        feeds = self._inputs(reference)
        session, name, output = _infer(reference, task.output)
        expected = [session.run({name: array}, [output])[output] for _, array in feeds]

        def score(model: onnx.ModelProto) -> float:
            if model is reference:
                return 1.0
            runner, input_name, out_name = _infer(model, task.output)
            agreement = task.agreement()
            for (sample_id, array), before in zip(feeds, expected, strict=True):
                after = runner.run({input_name: array}, [out_name])[out_name]
                agreement.update(sample_id, before[0], after[0])
            return float(agreement.result()[agreement.primary])

        return score

    def describe(self) -> str:
        task = self._task()
        where = f"{self.samples} images of {self.data}" if self.data else (
            f"{self.samples} generated {task.dataset}-like images (seed {self.seed})")
        return f"{task.agreement().headline} ({self.recipe.name}, {self.mode} preprocessing) on {where}"


@dataclass
class DatasetMetric:
    """A labelled metric of the recipe's mode on a dataset folder, in points (fractions × 100).

    Attributes:
        recipe: the zoo recipe.
        metric: the budget's metric (``top1``, ``top5``, ``miou``, ``iou``, ``pixacc``).
        data: the dataset folder, in the layout the recipe's evaluation reads.
        limit: the first N samples (sorted), or all.
        mode: ``guide`` or ``upstream``.
    """

    recipe: Any
    metric: str
    data: str
    limit: int | None = None
    mode: str = "guide"

    def __post_init__(self) -> None:
        if self.metric not in METRIC_KEYS:
            raise UsageError(f"no evaluation figure for budget metric {self.metric!r}")
        if getattr(self.recipe, "evaluation", None) is None:
            raise UsageError(f"recipe {getattr(self.recipe, 'name', '?')} has no evaluation spec")

    def bind(self, reference: onnx.ModelProto) -> Scorer:
        from surgery.eval.datasets import open_dataset
        from surgery.eval.runner import EvalTask, run_accuracy

        spec = self.recipe.evaluation
        dataset = open_dataset(spec.dataset, self.data, labels=True, prefer=spec.labels, limit=self.limit)
        task = EvalTask(spec, self.mode, self.recipe)

        def score(model: onnx.ModelProto) -> float:
            session, name, output = _infer(model, spec.output)

            def infer(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
                for array in batches:
                    yield session.run({name: array}, [output])[output]

            figures = run_accuracy(dataset, task, infer, batch=1).metrics
            key = next((k for k in METRIC_KEYS[self.metric] if k in figures), None)
            if key is None:
                raise UsageError(f"the {self.recipe.name} evaluation ({task.metric}) gives no {self.metric} figure "
                                 f"(it gives {', '.join(figures)})")
            return 100.0 * float(figures[key])

        return score

    def describe(self) -> str:
        limit = f"the first {self.limit} samples of " if self.limit else ""
        return f"{self.metric} (points, {self.recipe.name} {self.mode} metric) on {limit}{self.data}"


def evaluator_for(budget: Budget, recipe: Any | None, *, data: str | None = None, samples: int = 32,
                  seed: int = JUDGE_SEED, input_shapes: dict[str, Shape] | None = None) -> Evaluator:
    """What measures ``budget``: the zoo task's agreement or labelled metric, else output agreement.

    Args:
        budget: the budget.
        recipe: the zoo recipe of the model, if it is one (its evaluation spec decides the task).
        data: a dataset folder in the recipe's layout (labels for ``top1``/``miou``/``iou``), or
            for other models a folder of input arrays; None: generated images.
        samples: images to judge on (the first N of ``data``).
        seed: the first generated image's seed.
        input_shapes: sizes for dynamic input dims.

    Raises:
        UsageError: a labelled metric without a zoo recipe and a dataset.
    """
    evaluates = recipe is not None and getattr(recipe, "evaluation", None) is not None
    if budget.labelled:
        if not evaluates or not data:
            raise UsageError(f"--budget {budget} scores a zoo model on its labelled dataset: give a zoo MODEL and "
                             "--budget-data DIR (its dataset's layout, see surgery eval); or use agreement=0.99, "
                             "which needs no labels")
        return DatasetMetric(recipe, budget.metric, data, limit=samples)
    if evaluates:
        return RecipeAgreement(recipe, samples=samples, seed=seed, data=data, input_shapes=input_shapes)
    return OutputAgreement(source_for(data, seed=seed), samples=samples, input_shapes=input_shapes)


def quantize_candidate(registry: Mapping[str, type[Pass]], budget: Budget, recipe: Any | None, *,
                       fallback: bool = False, max_layers: int | None = None, data: str | None = None,
                       samples: int = 32, calib: str | None = None,
                       input_shapes: dict[str, Shape] | None = None) -> Candidate:
    """``quantize_int8`` as a ``surgery tune`` candidate, kept only within ``budget`` (and only when faster).

    Raises:
        UsageError: the registry has no quantize_int8.
    """
    from surgery.calibration import distribution_for_recipe

    if "quantize_int8" not in registry:
        raise UsageError("--budget makes tune try quantize_int8, which this pass registry does not have")
    options: dict[str, Any] = {"calib": calib} if calib else {"distribution": distribution_for_recipe(recipe)}
    p = registry["quantize_int8"](**options)
    check = BudgetCheck(budget, evaluator_for(budget, recipe, data=data, samples=samples, input_shapes=input_shapes),
                        fallback=fallback, max_layers=max_layers)
    return Candidate.for_pass(p, checks=(check,), name=f"pass quantize_int8 within {budget}")
