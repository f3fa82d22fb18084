"""Before vs after on one set of images: task agreement, and each model's accuracy when there are labels.

The one path ``surgery eval BEFORE AFTER`` and ``surgery run`` share: images come from a
dataset in its real layout (``data``: the recipe's preprocessing, labels scored when
present) or are generated in the model's input distribution (``generate``: no labels, the
figures are agreement only and say they are not accuracy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from surgery.errors import UsageError
from surgery.eval import fidelity as fid
from surgery.eval import runner
from surgery.eval.datasets import open_dataset
from surgery.eval.errors import DatasetError
from surgery.eval.result import EvalResult
from surgery.recipe import Recipe


def compare(spec: fid.TaskSpec, before: runner.Infer, after: runner.Infer, *, recipe: Recipe | None = None,
            data: str | None = None, generate: int | None = None, input_shape: Sequence[int] | None = None,
            seed: int = 0, batch: int = 1, limit: int | None = None, metric: str = "",
            on_total: Callable[[int], None] | None = None, on_sample: runner.OnSample | None = None) -> EvalResult:
    """Run both models on the same images; the fidelity result (``extra["accuracy"]`` with labels).

    Args:
        spec: the task (kind, scored output, preprocessing mode).
        before: inference of the model before the rewrite.
        after: inference of the model after it.
        recipe: the zoo recipe, needed with ``data`` (dataset layout, preprocessing, metric).
        data: a dataset folder in the recipe's layout.
        generate: or this many generated images (``input_shape`` gives their size).
        input_shape: the model's N×3×H×W input, for ``generate``.
        seed: the first generated image's seed.
        batch: images per inference call.
        limit: at most this many dataset images.
        metric: another scorer of the same task (default: the recipe's).
        on_total: called once with the number of images.
        on_sample: called with the count of images done.

    Raises:
        UsageError: neither or both of ``data`` and ``generate``; ``data`` without a recipe.
        DatasetError: a bad dataset layout (one line naming the file).
    """
    if (data is None) == (generate is None):
        raise UsageError("give --data DIR or --generate N (exactly one)")
    started = time.perf_counter()
    scorers = labels = None
    if generate is not None:
        if input_shape is None:
            raise UsageError("generated images need the model's input shape")
        feeds = fid.generated_feeds(spec, input_shape, generate, seed)
        items: Any = runner.generated_items(feeds, batch)
        total = len(feeds)
        described: dict[str, Any] = {"generated": spec.dataset, "samples": total, "seed": seed,
                                     "shape": list(input_shape)}
        synthetic, notices = True, []
    else:
        if recipe is None or recipe.evaluation is None:
            raise UsageError("--data needs a recipe (the dataset layout and preprocessing): give --recipe NAME, or "
                             "use --generate N")
        task = runner.EvalTask(recipe.evaluation, spec.mode, recipe, metric=metric)
        try:
            dataset = open_dataset(recipe.evaluation.dataset, data, prefer=recipe.evaluation.labels, limit=limit)
        except DatasetError:  # no labels: agreement alone (a layout error recurs below, in its own words)
            dataset = open_dataset(recipe.evaluation.dataset, data, labels=False, limit=limit)
        items = runner.dataset_items(dataset, task.preprocessor, batch)
        total, described, synthetic, notices = (len(dataset.samples), dataset.describe(), dataset.synthetic,
                                                list(dataset.notices))
        if dataset.has_labels:
            scorers = (task.scorer(), task.scorer())
            by_id: Mapping[str, Any] = {s.id: s for s in dataset.samples}

            def labels(sample_id: str) -> Any:
                return task.label(dataset, by_id[sample_id])

    if on_total is not None:
        on_total(total)
    result = runner.run_fidelity(items, before, after, spec.agreement(), recipe=spec.recipe, mode=spec.mode,
                                 scorers=scorers, labels=labels, on_sample=on_sample)
    result.seconds["total"] = time.perf_counter() - started
    result.dataset, result.synthetic, result.notices = described, synthetic, notices
    result.preprocessing = {**asdict(spec.preprocessing), "geometry": generate is None}
    return result
