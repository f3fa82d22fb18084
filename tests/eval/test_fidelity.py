"""Fidelity: agreement on the task's own terms, and the instrument inside a pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse, two_heads
from surgery.models import RECIPES
from surgery.passes import EliminateDeadCode, ResizeNearest

from surgery.errors import UsageError
from surgery.eval.fidelity import (
    BinaryAgreement,
    ClassificationAgreement,
    FidelityInstrument,
    SegmentationAgreement,
    TaskSpec,
    generated_feeds,
)
from surgery.pipeline import Pipeline


def test_segmentation_agreement_by_hand():
    a = SegmentationAgreement()
    before, after = np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]])
    figures = a.update("x", before, after)
    # before 0 -> after 0: 1; before 1 -> after 0: 1, after 1: 2. IoU_0 = 1/2, IoU_1 = 2/3
    assert figures == pytest.approx({"mIoU": (1 / 2 + 2 / 3) / 2, "pixel_agreement": 3 / 4})
    assert a.result()["max_abs"] == 1.0


def test_binary_agreement_thresholds_by_mode():
    before = np.array([[[0.7, 0.2], [-1.0, -1.0]]], np.float32)
    after = np.array([[[0.4, 0.2], [-1.0, -1.0]]], np.float32)
    raw, sig = BinaryAgreement("raw"), BinaryAgreement("sigmoid")
    # raw logits > 0.5: {(0,0)} before, {} after -> IoU 0; sigmoid (logit > 0): both {(0,0), (0,1)} -> 1
    assert raw.update("x", before, after) == {"mask_IoU": 0.0, "pixel_agreement": 0.75}
    assert sig.update("x", before, after) == {"mask_IoU": 1.0, "pixel_agreement": 1.0}
    empty = BinaryAgreement("raw")
    empty.update("e", -np.ones((1, 2, 2), np.float32), -np.ones((1, 2, 2), np.float32))
    assert empty.result()["mask_IoU"] == 1.0  # two empty masks agree


def test_classification_agreement():
    a = ClassificationAgreement()
    before = np.array([9, 8, 7, 6, 5, 4, 0], np.float32)
    after = np.array([8, 9, 7, 6, 0, 4, 5], np.float32)  # top-1 swapped, top-5 {0,1,2,3,6} vs {0,1,2,3,4}
    assert a.update("x", before, after) == {"top1_agreement": 0.0, "top5_overlap": 0.8}
    with pytest.raises(UsageError, match="differ in shape"):
        a.update("y", before, after[:3])


def test_instrument_records_inexact_passes_only():
    inst = FidelityInstrument("segmentation", samples=2, seed=3)
    result = Pipeline([EliminateDeadCode(), ResizeNearest()], [inst]).run(two_heads())
    assert "fidelity" not in result.steps[0].figures  # exact: verified by parity, not measured here
    fig = result.steps[1].figures["fidelity"]
    assert fig["kind"] == "fidelity" and fig["task"] == "segmentation" and fig["samples"] == 2
    assert set(fig["metrics"]) == {"mIoU", "pixel_agreement", "max_abs"}
    assert 0 <= fig["metrics"]["mIoU"] <= 1 and fig["headline"].startswith("mIoU vs before ")
    assert fig["extra"]["output"] == "up" and fig["synthetic"] and len(fig["per_sample"]) == 2
    assert result.figures["fidelity_inputs"]["shape"] == [1, 3, 8, 8]


def test_unchanged_model_and_unfeedable_models_are_skipped_with_a_reason():
    model = two_heads()
    ResizeNearest()(model)
    result = Pipeline([ResizeNearest()], [FidelityInstrument("segmentation", samples=1)]).run(model)
    assert result.steps[0].figures["fidelity"] == {"skipped": "model unchanged"}
    two_inputs = parse("""
<ir_version: 7, opset_import: ["" : 11]>
g (float[1, 3, 4, 4] a, float[1, 3, 4, 4] b) => (float[1, 3, 4, 4] c) { c = Add (a, b) }
""")
    inst = FidelityInstrument("segmentation", samples=1, every_pass=True)
    result = Pipeline([EliminateDeadCode()], [inst]).run(two_inputs)
    assert "one image input" in result.figures["fidelity_inputs"]["skipped"]


BINARY = """
<ir_version: 7, opset_import: ["" : 11]>
g (float[N, 3, 8, 8] x) => (float[N, 1, 8, 8] y) { y = Conv (x, w) }
"""
CLASSIFIER = """
<ir_version: 7, opset_import: ["" : 11]>
g (float[N, 3, 8, 8] x) => (float[N, 10] y) {
    m = ReduceMean <axes = [2, 3], keepdims = 0> (x)
    y = MatMul (m, w)
}
"""


@pytest.mark.parametrize("task, model", [
    ("segmentation", lambda: two_heads()),
    ("binary_segmentation", lambda: parse(BINARY, w=np.full((1, 3, 1, 1), 3.0, np.float32))),
    ("classification", lambda: parse(CLASSIFIER, w=np.random.default_rng(0).standard_normal((3, 10))
                                     .astype(np.float32))),
])
def test_a_model_against_itself_is_exactly_one(task, model):
    m = model()
    result = FidelityInstrument(task, samples=3).compare(m, m)
    primary = result.metrics[result.primary]
    assert primary == 1.0 and result.metrics["max_abs"] == 0.0
    assert all(v == 1.0 for k, v in result.metrics.items() if k not in ("max_abs",))


def test_recipe_tasks_generate_inputs_in_their_distribution():
    spec = TaskSpec(RECIPES["unetpp"])
    assert spec.kind == "binary_segmentation" and spec.output == "output1" and spec.preprocessing.read == "bgr"
    feeds = generated_feeds(spec, (1, 3, 16, 16), 2, seed=0)
    assert [f[0] for f in feeds] == ["generated_0000", "generated_0001"] and feeds[0][1].shape == (1, 3, 16, 16)
    assert np.abs(feeds[0][1]).max() < 0.01  # UNet++'s double /255
    again = generated_feeds(spec, (1, 3, 16, 16), 2, seed=0)
    np.testing.assert_array_equal(feeds[1][1], again[1][1])
    with pytest.raises(UsageError, match="N×3×H×W"):
        generated_feeds(spec, (1, 16), 1)
    with pytest.raises(UsageError, match="task must be a recipe or one of"):
        TaskSpec("detection")


def test_instrument_figure_is_json_ready():
    import json

    fig = FidelityInstrument(RECIPES["icnet"], samples=1).compare(two_heads(), two_heads()).to_dict()
    json.dumps(fig)
    assert fig["recipe"] == "icnet" and fig["mode"] == "guide" and fig["extra"]["output"] == "up"


def test_default_samples_shrink_for_large_inputs_and_for_recipe_follows_the_flag():
    from surgery.eval.fidelity import default_samples

    assert default_samples((1, 3, 96, 96)) == 8 and default_samples((1, 3, 224, 224)) == 8
    assert default_samples((1, 3, 1024, 2048)) == 2 and default_samples((1, 3, 512, 1024)) == 4
    inst = FidelityInstrument.for_recipe(RECIPES["icnet"])
    result = Pipeline([ResizeNearest()], [inst]).run(two_heads())
    assert result.steps[0].figures["fidelity"]["samples"] == 8  # 8x8 input: the full default
    assert FidelityInstrument.for_recipe(RECIPES["unetpp"], samples=0) is None
    assert FidelityInstrument.for_recipe(None) is None
