"""Running an evaluation: dataset → preprocessing → batched inference → scoring, or outputs made elsewhere.

Inference is a callable handed in (the CLI builds it from :meth:`surgery.targets.Target.infer`):
``infer(batches) -> outputs``, one output array (the scored output, batch axis first) per
input batch, lazily. Preprocessing runs one batch ahead in a thread (PIL decoding, numpy and
onnxruntime release the GIL), so reading images overlaps with inference.

- :func:`run_accuracy`: labels and the recipe mode's metric → an ``accuracy`` EvalResult.
- :func:`score_outputs`: the same from an ais_bench / benchmark output folder.
- :func:`run_fidelity`: two models on the same inputs → a ``fidelity`` EvalResult (plus each
  model's accuracy when the dataset has labels).
- :func:`prepare_bins`: the guide's preprocessing to ``.bin`` files and an ``.info`` list.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery.errors import UsageError
from surgery.eval import formats, metrics
from surgery.eval.datasets import CITYSCAPES_CLASSES, Dataset, Sample
from surgery.eval.fidelity import Agreement, agreement_result, output_name
from surgery.eval.formats import Layout, OutputFolder
from surgery.eval.preprocess import Preprocessor
from surgery.eval.result import EvalResult, published_rows
from surgery.recipe import EvalSpec, Recipe
from surgery.shapes import InputSpec, model_inputs

Infer = Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]
Feed = dict[str, np.ndarray]
OnSample = Callable[[int], None]


@dataclass
class EvalTask:
    """A recipe's evaluation in one mode: spec, preprocessing, metric.

    Attributes:
        spec: the recipe's evaluation spec.
        mode: ``guide`` or ``upstream``.
        recipe: the recipe (for its published figures), if any.
        preprocessor: the mode's preprocessing.
        metric: the mode's scorer name (``--metric`` may override it for segmentation).
    """

    spec: EvalSpec
    mode: str
    recipe: Recipe | None = None
    preprocessor: Preprocessor = field(init=False)
    metric: str = ""

    def __post_init__(self) -> None:
        mode = self.spec.mode(self.mode)
        self.preprocessor = Preprocessor(mode.preprocessing)
        self.metric = self.metric or mode.metric

    @property
    def recipe_name(self) -> str | None:
        return self.recipe.name if self.recipe is not None else None

    def scorer(self) -> metrics.Scorer:
        names = CITYSCAPES_CLASSES if self.spec.dataset == "cityscapes" else ()
        return metrics.make_scorer(self.metric, num_classes=self.spec.num_classes, batch=self.spec.batch,
                                   class_names=names)

    def primary(self, scorer: metrics.Scorer) -> str:
        """The headline: in guide mode the metric the guide published (ICNet: its 'Average' mIoU)."""
        if self.mode == "guide" and self.spec.published:
            first = next(iter(self.spec.published.values()))
            if first in scorer.notes:
                return first
        return scorer.primary

    def label(self, dataset: Dataset, sample: Sample) -> Any:
        """The sample's label, through the mode's geometry (nearest) for maps and masks."""
        label = dataset.read_label(sample)
        if isinstance(label, np.ndarray):
            label = self.preprocessor.apply_geometry(label, nearest=True)
        return label

    def layouts(self, label: Any, model_layout: Layout | None = None) -> list[Layout]:
        """The shapes and dtypes an output file for this label may have (the model's own first)."""
        out = [model_layout] if model_layout is not None else []
        c = self.spec.num_classes
        if self.spec.task == "classification":
            out += [Layout(d, (1, n)) for d in ("float32", "float16") for n in (c, c + 1)]
        elif isinstance(label, np.ndarray):
            h, w = label.shape[:2]
            if self.spec.task == "segmentation":
                out += [Layout("float32", (1, c, h, w)), Layout("float16", (1, c, h, w)),
                        Layout("int64", (1, 1, h, w)), Layout("int32", (1, 1, h, w))]
            else:
                out += [Layout("float32", (1, 1, h, w)), Layout("float16", (1, 1, h, w))]
        return out


@dataclass(frozen=True)
class ModelIO:
    """What eval feeds and reads: the model's one image input, the scored output, its index and file layout."""

    input: InputSpec
    output: str
    index: int
    layout: Layout | None


def model_io(model: onnx.ModelProto, wanted: str | int, what: str = "the model") -> ModelIO:
    """The image input and the scored output (``wanted`` by name, else by index, else the first).

    Raises:
        UsageError: a model with more than one input.
    """
    specs = model_inputs(model)
    if len(specs) != 1:
        raise UsageError(f"{what} has {len(specs)} inputs; eval feeds one image input")
    outputs = list(model.graph.output)
    names = [o.name for o in outputs]
    name = output_name(names, wanted)
    tensor = outputs[names.index(name)].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim)
    try:
        layout = Layout(str(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)), dims) if dims else None
    except (KeyError, ValueError, TypeError):  # a dtype numpy has no name for: size alone decides
        layout = None
    return ModelIO(input=specs[0], output=name, index=names.index(name), layout=layout)


class Feeder:
    """An iterator a caller pushes batches into, one at a time (two models can then share each batch)."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()

    def push(self, item: Any) -> None:
        self._items.append(item)

    def __iter__(self) -> Feeder:
        return self

    def __next__(self) -> Any:
        if not self._items:
            raise RuntimeError("inference asked for a batch before returning the previous one's outputs")
        return self._items.popleft()


def prefetched(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """``items`` produced ``depth`` ahead in a thread; its exceptions re-raised here."""
    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", done))
        except BaseException as exc:  # handed to the consumer
            put(("error", exc))

    thread = threading.Thread(target=work, name="surgery-eval-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


@dataclass
class Timer:
    """Seconds spent per phase (preprocessing runs in its own thread, so phases overlap)."""

    seconds: dict[str, float] = field(default_factory=lambda: {"preprocess": 0.0, "inference": 0.0, "score": 0.0})

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - since
        return now


def split_batch(output: np.ndarray, n: int) -> list[np.ndarray]:
    """One array per sample: along axis 0, or axis 1 where the batch sits there (mmseg's 1×N×H×W argmax)."""
    out = np.asarray(output)
    if out.ndim and out.shape[0] == n:
        return [out[i] for i in range(n)]
    if out.ndim >= 2 and out.shape[0] == 1 and out.shape[1] == n:
        return [out[:, i] for i in range(n)]
    raise UsageError(f"the model returned an output of shape {list(out.shape)} for a batch of {n}")


def _chunks(samples: Sequence[Sample], batch: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), batch):
        yield list(samples[start:start + batch])


def _stack(chunk: Sequence[Sample], arrays: list[np.ndarray]) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        sizes = ", ".join(f"{s.image.name} {a.shape[1]}x{a.shape[2]}" for s, a in zip(chunk, arrays, strict=True))
        raise UsageError(f"images of different sizes cannot share a batch ({sizes}); use --batch 1")
    return np.stack(arrays)


def preprocessed_batches(samples: Sequence[Sample], pre: Preprocessor, batch: int, timer: Timer
                         ) -> Iterator[tuple[list[Sample], np.ndarray]]:
    """(samples, N×C×H×W float32) per batch, in dataset order."""
    for chunk in _chunks(samples, batch):
        start = time.perf_counter()
        arrays = [pre(s.image) for s in chunk]
        stacked = _stack(chunk, arrays)
        timer.add("preprocess", start)
        yield chunk, stacked


def _accuracy_result(task: EvalTask, scorer: metrics.Scorer, dataset: Dataset | None) -> EvalResult:
    figures = scorer.result()
    result = EvalResult(kind="accuracy", task=task.spec.task, metric=scorer.name, primary=task.primary(scorer),
                        metrics=figures, recipe=task.recipe_name, mode=task.mode, notes=dict(scorer.notes),
                        guide_line=scorer.guide_line(figures) if scorer.per_sample else "",
                        per_sample=list(scorer.per_sample), worst_key=scorer.per_sample_key,
                        preprocessing=task.preprocessor.describe(), extra=scorer.extra())
    if dataset is not None:
        result.dataset = dataset.describe()
        result.synthetic = dataset.synthetic
        result.notices = list(dataset.notices)
    if task.recipe is not None:
        result.published = published_rows(task.spec, task.recipe.published, figures)
    return result


def run_accuracy(dataset: Dataset, task: EvalTask, infer: Infer, *, batch: int = 1,
                 on_sample: OnSample | None = None) -> EvalResult:
    """Evaluate a model on a labelled dataset: preprocess, infer in batches, score with the mode's metric.

    Raises:
        DatasetError: an unreadable image or label.
        OutputsError: an output the metric cannot read (wrong shape, classes out of range).
    """
    if not dataset.has_labels:
        raise UsageError(f"{dataset.root}: accuracy needs labels")
    scorer = task.scorer()
    timer = Timer()
    started = time.perf_counter()
    feeder = Feeder()
    outputs = infer(feeder)
    done = 0
    for chunk, array in prefetched(preprocessed_batches(dataset.samples, task.preprocessor, batch, timer)):
        feeder.push(array)
        t = time.perf_counter()
        out = next(outputs)
        t = timer.add("inference", t)
        for sample, per in zip(chunk, split_batch(out, len(chunk)), strict=True):
            scorer.update(sample.id, per, task.label(dataset, sample))
            done += 1
            if on_sample is not None:
                on_sample(done)
        timer.add("score", t)
    result = _accuracy_result(task, scorer, dataset)
    result.seconds = {"total": time.perf_counter() - started, **timer.seconds}
    return result


def score_outputs(dataset: Dataset, task: EvalTask, folder: OutputFolder, *, index: int = 0,
                  model_layout: Layout | None = None, on_sample: OnSample | None = None) -> EvalResult:
    """Score outputs computed elsewhere (an ais_bench or benchmark folder) against the dataset's labels.

    Raises:
        OutputsError: a sample without its output file, or one of a size no layout has.
    """
    if not dataset.has_labels:
        raise UsageError(f"{dataset.root}: scoring outputs needs labels")
    missing = [s for s in dataset.samples if index not in folder.files.get(s.id, {})]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise formats.OutputsError(f"no output for {missing[0].id}{more} in {folder.folder} (expected "
                                   f"{folder.expected_name(missing[0].id, index)}; --limit N scores the first N)")
    scorer = task.scorer()
    timer = Timer()
    started = time.perf_counter()
    for done, sample in enumerate(dataset.samples, 1):
        t = time.perf_counter()
        label = task.label(dataset, sample)
        output = folder.read(sample.id, index, task.layouts(label, model_layout))
        t = timer.add("read", t)
        scorer.update(sample.id, output, label)
        timer.add("score", t)
        if on_sample is not None:
            on_sample(done)
    result = _accuracy_result(task, scorer, dataset)
    result.source = folder.describe()
    unmatched = len(set(folder.files) - {s.id for s in dataset.samples})
    if unmatched:
        result.notices.append(f"{unmatched} output file groups in {folder.folder} match no sample scored")
    result.notices += folder.notices
    result.seconds = {"total": time.perf_counter() - started, **{k: v for k, v in timer.seconds.items() if v}}
    return result


def run_fidelity(items: Iterable[tuple[list[str], np.ndarray]], before: Infer, after: Infer, agreement: Agreement, *,
                 recipe: str | None = None, mode: str = "guide", scorers: tuple[metrics.Scorer, metrics.Scorer] |
                 None = None, labels: Callable[[str], Any] | None = None, on_sample: OnSample | None = None
                 ) -> EvalResult:
    """Run two models on the same batches and measure their agreement (and each one's accuracy with labels).

    Args:
        items: (sample ids, N×C×H×W batch) pairs.
        before: inference of the model before the rewrite.
        after: inference of the model after it.
        agreement: the task's agreement (:func:`surgery.eval.fidelity.make_agreement`).
        recipe: the recipe's name for the result.
        mode: the mode for the result.
        scorers: (before, after) scorers, when the samples have labels.
        labels: sample id → label, with ``scorers``.
        on_sample: called with the count of samples done.
    """
    feed_b, feed_a = Feeder(), Feeder()
    out_b, out_a = before(feed_b), after(feed_a)
    timer = Timer()
    started = time.perf_counter()
    done = 0
    for ids, array in items:
        t = time.perf_counter()
        feed_b.push(array)
        ob = next(out_b)
        feed_a.push(array)
        oa = next(out_a)
        t = timer.add("inference", t)
        for sample_id, b, a in zip(ids, split_batch(ob, len(ids)), split_batch(oa, len(ids)), strict=True):
            agreement.update(sample_id, b, a)
            if scorers is not None and labels is not None:
                label = labels(sample_id)
                scorers[0].update(sample_id, b, label)
                scorers[1].update(sample_id, a, label)
            done += 1
            if on_sample is not None:
                on_sample(done)
        timer.add("score", t)
    extra: dict[str, Any] = {}
    if scorers is not None and labels is not None:
        extra["accuracy"] = {"metric": scorers[0].name, "before": scorers[0].result(), "after": scorers[1].result()}
    result = agreement_result(agreement, recipe=recipe, mode=mode, extra=extra)
    result.seconds = {"total": time.perf_counter() - started, **{k: v for k, v in timer.seconds.items() if v}}
    return result


def dataset_items(dataset: Dataset, pre: Preprocessor, batch: int, timer: Timer | None = None
                  ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, batch) pairs of a dataset's images through a preprocessing, prefetched."""
    batches = preprocessed_batches(dataset.samples, pre, batch, timer or Timer())
    for chunk, array in prefetched(batches):
        yield [s.id for s in chunk], array


def generated_items(feeds: Sequence[tuple[str, np.ndarray]], batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, batch) pairs of generated 1×C×H×W inputs."""
    for start in range(0, len(feeds), batch):
        part = feeds[start:start + batch]
        yield [i for i, _ in part], np.concatenate([a for _, a in part])


def prepare_bins(dataset: Dataset, pre: Preprocessor, out_dir: str | Path, *, info: str | Path | None = None,
                 info_size: tuple[int, int] | None = None, on_sample: OnSample | None = None) -> list[Path]:
    """The guide's preprocessing step: one ``<id>.bin`` per sample in ``out_dir``, and an ``.info`` list.

    Args:
        dataset: the samples (labels not needed).
        pre: the mode's preprocessing.
        out_dir: the folder of ``.bin`` files (created).
        info: the ``.info`` file to write, if any.
        info_size: the width and height written on each ``.info`` line (the guide's; default the input's).
        on_sample: progress.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    size = info_size
    for done, sample in enumerate(dataset.samples, 1):
        array = pre(sample.image)
        written.append(formats.write_bin(out / f"{sample.id}.bin", array))
        if size is None:
            size = (array.shape[2], array.shape[1])
        if on_sample is not None:
            on_sample(done)
    if info is not None and size is not None:
        formats.write_info(info, written, size[0], size[1])
    return written


def fit_static_batch(run: Callable[[Feed], Feed], batches: Iterable[Feed], static: dict[str, int]) -> Iterator[Feed]:
    """Run each batch through ``run``, meeting a model's static batch size as ais_bench does.

    A batch of another size than the static one runs in pieces of that size, the last one
    padded with copies of its last sample whose outputs are dropped; outputs are concatenated
    back along the batch axis (axis 0, or 1 for mmseg's 1×N×H×W argmax).
    """
    sizes = set(static.values())
    fixed = sizes.pop() if len(sizes) == 1 else None
    for feed in batches:
        n = next(iter(feed.values())).shape[0]
        if fixed is None or n == fixed:
            yield run(feed)
            continue
        parts: dict[str, list[np.ndarray]] = {}
        axes: dict[str, int] = {}
        for start in range(0, n, fixed):
            real = min(fixed, n - start)
            piece = {}
            for k, v in feed.items():
                part = v[start:start + real]
                if real < fixed:
                    part = np.concatenate([part, np.repeat(part[-1:], fixed - real, axis=0)])
                piece[k] = part
            for name, out in run(piece).items():
                axis = 0 if out.shape[0] == fixed else 1
                axes[name] = axis
                parts.setdefault(name, []).append(out[:real] if axis == 0 else out[:, :real])
        yield {name: np.concatenate(chunks, axis=axes[name]) for name, chunks in parts.items()}
