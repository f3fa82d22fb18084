"""The evaluation loop: batches through an inference callable, scoring, outputs folders, .bin preparation."""

from __future__ import annotations

import numpy as np
import pytest
from surgery.models import RECIPES

from surgery.errors import UsageError
from surgery.eval import formats, runner
from surgery.eval.datasets import open_dataset
from surgery.eval.errors import OutputsError
from surgery.eval.fidelity import make_agreement


def perfect_segmenter(dataset, task):
    """An inference callable that returns one-hot logits of each sample's label, in dataset order."""
    labels = iter([task.label(dataset, s) for s in dataset.samples])

    def infer(batches):
        for batch in batches:
            yield np.stack([np.eye(19, dtype=np.float32)[np.minimum(next(labels), 18)].transpose(2, 0, 1)
                            for _ in range(batch.shape[0])])
    return infer


def test_a_perfect_predictor_scores_one(datasets):
    recipe = RECIPES["deeplabv3"]
    task = runner.EvalTask(recipe.evaluation, "guide", recipe)
    ds = open_dataset("cityscapes", datasets["cityscapes"], prefer="labelTrainIds")
    seen = []
    result = runner.run_accuracy(ds, task, perfect_segmenter(ds, task), batch=2, on_sample=seen.append)
    assert result.metrics["mIoU"] == 1.0 and result.metrics["aAcc"] == 1.0 and seen == [1, 2, 3]
    assert result.kind == "accuracy" and result.primary == "mIoU" and result.synthetic and result.samples == 3
    row = result.published[0]
    assert row["key"] == "mIoU" and row["value"] == 100.0 and row["figures"] == {"310": 79.06, "310P": 79.12}
    assert set(result.seconds) >= {"total", "preprocess", "inference", "score"}


def test_icnet_guide_headline_is_the_average(datasets):
    recipe = RECIPES["icnet"]
    task = runner.EvalTask(recipe.evaluation, "guide", recipe)
    ds = open_dataset("cityscapes", datasets["cityscapes"])
    result = runner.run_accuracy(ds, task, perfect_segmenter(ds, task))
    assert result.primary == "mIoU_average" and result.metrics["pixAcc"] == 1.0
    assert result.guide_line.startswith("Evaluate: Average mIoU: ")
    upstream = runner.EvalTask(recipe.evaluation, "upstream", recipe)
    assert upstream.primary(upstream.scorer()) == "mIoU"


def test_outputs_in_ais_bench_layout_are_scored(datasets, tmp_path):
    recipe = RECIPES["icnet"]
    task = runner.EvalTask(recipe.evaluation, "guide", recipe)
    ds = open_dataset("cityscapes", datasets["cityscapes"])
    run = tmp_path / "result" / "eval_bs1"
    run.mkdir(parents=True)
    for s in ds.samples:
        label = np.minimum(task.label(ds, s), 18)
        np.eye(19, dtype=np.float32)[label].transpose(2, 0, 1)[None].tofile(run / f"{s.id}_0.bin")
    folder = formats.open_outputs(tmp_path / "result")
    result = runner.score_outputs(ds, task, folder)
    assert result.metrics["mIoU_nanmean"] == 1.0 and result.source["layout"] == "ais_bench"
    (run / f"{ds.samples[1].id}_0.bin").unlink()
    folder = formats.open_outputs(tmp_path / "result")
    with pytest.raises(OutputsError, match=rf"no output for {ds.samples[1].id} .*expected .*_0\.bin"):
        runner.score_outputs(ds, task, folder)


def test_fidelity_of_a_model_with_itself_and_both_accuracies(datasets):
    recipe = RECIPES["unetpp"]
    task = runner.EvalTask(recipe.evaluation, "guide", recipe)
    ds = open_dataset("dsb2018", datasets["dsb2018"])

    def model(batches):
        for b in batches:
            yield b[:, :1] * 1000  # logits from the image: some pixels above the threshold
    by_id = {s.id: s for s in ds.samples}
    result = runner.run_fidelity(runner.dataset_items(ds, task.preprocessor, 2), model, model,
                                 make_agreement("binary_segmentation"), recipe="unetpp",
                                 scorers=(task.scorer(), task.scorer()), labels=lambda i: task.label(ds, by_id[i]))
    assert result.metrics["mask_IoU"] == 1.0 and result.metrics["pixel_agreement"] == 1.0
    acc = result.extra["accuracy"]
    assert acc["before"] == acc["after"] and acc["metric"] == "iou_raw_logits"


def test_batches_of_different_sizes_are_refused(datasets):
    recipe = RECIPES["cspresnext50"]
    upstream = runner.EvalTask(recipe.evaluation, "upstream", recipe)
    ds = open_dataset("imagenet", datasets["imagenet"])
    assert next(runner.preprocessed_batches(ds.samples, upstream.preprocessor, 3, runner.Timer()))[1].shape == \
        (3, 3, 224, 224)


def test_split_batch_and_static_batch_fitting():
    assert [a.shape for a in runner.split_batch(np.zeros((3, 2)), 3)] == [(2,)] * 3
    assert [a.shape for a in runner.split_batch(np.zeros((1, 2, 5)), 2)] == [(1, 5)] * 2  # mmseg's 1×N×H×W
    with pytest.raises(UsageError, match="output of shape \\[4\\] for a batch of 2"):
        runner.split_batch(np.zeros(4), 2)
    calls = []

    def run(feed):
        calls.append(feed["x"].shape[0])
        return {"y": feed["x"] * 2}
    x = np.arange(5, dtype=np.float32)[:, None]
    out = list(runner.fit_static_batch(run, [{"x": x}], {"x": 2}))
    assert calls == [2, 2, 2] and out[0]["y"].ravel().tolist() == [0, 2, 4, 6, 8]  # last piece padded, trimmed


def test_feeder_refuses_a_batch_asked_early():
    feeder = runner.Feeder()
    feeder.push(1)
    assert next(feeder) == 1
    with pytest.raises(RuntimeError, match="asked for a batch before"):
        next(feeder)


def test_prefetch_hands_errors_to_the_consumer():
    def items():
        yield 1
        raise ValueError("broken image")
    got = runner.prefetched(items())
    assert next(got) == 1
    with pytest.raises(ValueError, match="broken image"):
        next(got)


def test_prepare_bins_writes_the_guides_files(datasets, tmp_path):
    recipe = RECIPES["unetpp"]
    task = runner.EvalTask(recipe.evaluation, "guide", recipe)
    ds = open_dataset("dsb2018", datasets["dsb2018"], labels=False)
    written = runner.prepare_bins(ds, task.preprocessor, tmp_path / "prep", info=tmp_path / "u.info",
                                  info_size=recipe.evaluation.info_size)
    assert [p.name for p in written] == [f"{s.id}.bin" for s in ds.samples]
    np.testing.assert_array_equal(formats.read_bin(written[0], "float32", (3, 96, 96)),  # the guide squashes to 96
                                  task.preprocessor(ds.samples[0].image))
    lines = (tmp_path / "u.info").read_text().splitlines()
    assert lines[0].endswith(" 96 96") and lines == sorted(lines, key=lambda ln: int(ln.split()[0]))
