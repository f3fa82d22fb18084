"""Metrics worked out by hand on small cases, each guide's quirk included."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery.eval import metrics
from surgery.eval.errors import OutputsError
from surgery.eval.metrics import (
    ICNetSegmentation,
    IoURawLogits,
    IoUSigmoidBatch,
    MMSegSegmentation,
    TopK,
    make_scorer,
)

IGN = 255


def one_hot(pred: np.ndarray, classes: int) -> np.ndarray:
    """C×H×W logits whose argmax is ``pred``."""
    return (np.arange(classes)[:, None, None] == pred[None]).astype(np.float32) * 2.0


# two images, three classes:
#   1: label [[0, 0], [1, ign]], prediction [[0, 1], [1, 2]] -> inter [1, 1, 0], union [2, 2, 0], 2/3 correct
#   2: label all 2, prediction all 2                           -> inter [0, 0, 4], union [0, 0, 4]
LABEL1, PRED1 = np.array([[0, 0], [1, IGN]], np.uint8), np.array([[0, 1], [1, 2]])
LABEL2, PRED2 = np.full((2, 2), 2, np.uint8), np.full((2, 2), 2)


def test_icnet_counts_absent_classes_as_zero_and_averages_running_values():
    m = ICNetSegmentation(3)
    first = m.update("a", one_hot(PRED1, 3), LABEL1)
    assert first == pytest.approx({"pixAcc": 2 / 3, "mIoU": 0.5})  # the image's own figures (classes present)
    m.update("b", one_hot(PRED2, 3), LABEL2)
    r = m.result()
    # cumulative: IoU [1/2, 1/2, 4/4]; after image 1 the running mIoU was (1/2 + 1/2 + 0) / 3
    assert r["mIoU"] == pytest.approx(2 / 3)
    assert r["mIoU_average"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert r["pixAcc"] == pytest.approx(6 / 7) and r["pixAcc_average"] == pytest.approx((2 / 3 + 6 / 7) / 2)
    assert r["mIoU_nanmean"] == pytest.approx(2 / 3)
    assert m.guide_line(r) == "Evaluate: Average mIoU: 0.500, Average pixAcc: 0.762"


def test_icnet_pixacc_takes_the_argmax_of_truncated_logits():
    # the true argmax is class 1 (0.9); truncated logits are all 0, so argmax picks class 0
    logits = np.array([0.2, 0.9, -0.5], np.float32)[:, None, None]
    m = ICNetSegmentation(3)
    m.update("a", logits, np.array([[1]], np.uint8))
    r = m.result()
    assert r["pixAcc"] == 0.0 and r["pixAcc_argmax"] == 1.0 and r["mIoU_nanmean"] == 1.0


def test_mmseg_nanmean_skips_classes_absent_from_both():
    m = MMSegSegmentation(3)
    m.update("a", one_hot(PRED1, 3), LABEL1)
    assert m.result()["mIoU"] == pytest.approx(0.5)  # class 2: predicted only on an ignored pixel
    m.update("b", PRED2, LABEL2)  # a label map (an argmax head's output) is scored as is
    r = m.result()
    assert r == pytest.approx({"mIoU": 2 / 3, "aAcc": 6 / 7, "mAcc": (0.5 + 1 + 1) / 3})
    assert m.guide_line(r) == "{'aAcc': 85.71, 'mIoU': 66.67}"
    assert m.extra()["per_class"]["IoU"] == pytest.approx([0.5, 0.5, 1.0])


def test_perfect_and_constant_segmentation_predictors():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (8, 8)).astype(np.uint8)
    label[0] = IGN
    perfect, constant = ICNetSegmentation(19), MMSegSegmentation(19)
    perfect.update("p", one_hot(label.astype(int) % IGN, 19), label)
    r = perfect.result()
    # all pixels right; ICNet's mean over 19 classes still divides by 19 when 4 appear
    assert r["pixAcc"] == 1.0 and r["mIoU_nanmean"] == 1.0 and r["mIoU"] == pytest.approx(4 / 19, rel=1e-9)
    constant.update("c", np.zeros((8, 8), np.int64), label)
    valid = label != IGN
    share = float((label[valid] == 0).mean())
    # class 0 everywhere: IoU_0 = |label 0| / |labelled|, every other present class 0
    assert constant.result() == pytest.approx({"mIoU": share / 4, "aAcc": share, "mAcc": 1 / 4})


def test_segmentation_errors_are_one_line():
    m = MMSegSegmentation(3)
    with pytest.raises(OutputsError, match="prediction 2x2 and label 3x3 differ in size"):
        m.update("a", PRED1, np.zeros((3, 3), np.uint8))
    with pytest.raises(OutputsError, match=r"predicted class 7 is outside 0\.\.2"):
        m.update("a", np.full((2, 2), 7), LABEL2)
    with pytest.raises(OutputsError, match="expected C×H×W logits or an H×W label map"):
        m.update("a", np.zeros(5, np.float32), LABEL2)


def test_leading_batch_axes_are_dropped():
    assert metrics.label_map(np.ones((1, 1, 2, 2), np.int64)).shape == (2, 2)
    assert metrics.label_map(np.zeros((1, 3, 2, 2), np.float32)).shape == (2, 2)


# ---------------------------------------------------------------------------
# DSB2018


LOGITS = np.array([[0.6, 0.3], [-1.0, 2.0]], np.float32)[None]
MASK = np.array([[1, 1], [0, 0]], np.float32)


def test_guide_thresholds_raw_logits_at_half():
    m = IoURawLogits()
    figures = m.update("a", LOGITS, MASK)
    # raw > 0.5: {(0,0), (1,1)} vs mask {(0,0), (0,1)}: 1 / 3; sigmoid > 0.5 (logit > 0): 2 / 3
    assert figures["IoU"] == pytest.approx((1 + 1e-5) / (3 + 1e-5))
    assert figures["IoU_sigmoid"] == pytest.approx((2 + 1e-5) / (3 + 1e-5))
    assert m.guide_line(m.result()) == "IoU: 0.3333"


def test_empty_mask_and_empty_prediction_score_one():
    m = IoURawLogits()
    assert m.update("e", np.full((1, 4, 4), -3.0, np.float32), np.zeros((4, 4), np.float32))["IoU"] == 1.0


def test_upstream_scores_batches_of_consecutive_images_weighted_by_size():
    m = IoUSigmoidBatch(batch=2)
    masks = [MASK, np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)]
    logits = [LOGITS, np.full((1, 2, 2), -1.0, np.float32), np.array([[[1, 1], [1, -1]]], np.float32)]
    for i, (lo, ma) in enumerate(zip(logits, masks, strict=True)):
        m.update(str(i), lo, ma)
    # (inter, union): (2, 3), (0, 0), (3, 4); batches {0, 1} and {2}
    expected = ((2 + 0 + 1e-5) / (3 + 0 + 1e-5) * 2 + (3 + 1e-5) / (4 + 1e-5)) / 3
    assert m.result()["IoU"] == pytest.approx(expected)
    assert m.result()["IoU_per_image"] == pytest.approx(((2 + 1e-5) / (3 + 1e-5) + 1 + (3 + 1e-5) / (4 + 1e-5)) / 3)


def test_sigmoid_threshold_rounds_like_torch_in_float32():
    tiny = np.array([[[1e-9]]], np.float32)  # sigmoid rounds to exactly 0.5 in float32: not > 0.5
    assert (metrics.sigmoid32(tiny) > 0.5).sum() == 0 and (tiny > 0).sum() == 1


# ---------------------------------------------------------------------------
# ImageNet


def test_topk_with_ties_ranks_the_lower_class_first():
    scores = np.array([1, 3, 3, 2, 0, 5], np.float32)
    assert metrics.rank_of(scores, 5) == 0
    assert metrics.rank_of(scores, 1) == 1 and metrics.rank_of(scores, 2) == 2  # tie: class 1 before class 2
    m = TopK(6)
    m.update("a", scores[None], 2)
    m.update("b", scores, 4)
    r = m.result()
    assert r["top1"] == 0 and r["top2"] == 0 and r["top3"] == 0.5 and r["top5"] == 0.5


def test_topk_perfect_and_constant_predictors_and_the_guides_result_json():
    labels = [0, 3, 7, 999, 4]
    perfect, constant = TopK(1000), TopK(1000)
    for i, label in enumerate(labels):
        perfect.update(str(i), np.eye(1000, dtype=np.float32)[label], label)
        constant.update(str(i), np.zeros(1000, np.float32), label)  # all tied: class k ranks k-th
    assert perfect.result()["top1"] == 1.0
    assert constant.result() == pytest.approx({"top1": 0.2, "top2": 0.2, "top3": 0.2, "top4": 0.4, "top5": 0.6})
    doc = json.loads(constant.guide_line(constant.result()))
    assert doc["title"] == "Overall statistical evaluation"
    assert doc["value"][:2] == [{"key": "Number of images", "value": "5"},
                                {"key": "Number of classes", "value": "1000"}]
    assert doc["value"][2] == {"key": "Top1 accuracy", "value": "20.0%"} and doc["value"][6]["value"] == "60.0%"


def test_a_1001_class_output_shifts_labels_by_one():
    m = TopK(1000)
    scores = np.zeros(1001, np.float32)
    scores[6] = 1  # background first: class 5 is index 6
    m.update("a", scores, 5)
    assert m.result()["top1"] == 1.0 and m.extra()["label_offset"] == 1
    with pytest.raises(OutputsError, match="label 1000 is outside the output's 1000 classes"):
        TopK(1000).update("b", np.zeros(1000, np.float32), 1000)


def test_make_scorer_knows_every_metric():
    assert isinstance(make_scorer("iou_sigmoid_batch", num_classes=1, batch=4), IoUSigmoidBatch)
    from surgery.errors import UsageError

    with pytest.raises(UsageError, match="unknown metric 'miou'"):
        make_scorer("miou", num_classes=19)


def test_plane_wise_argmax_and_truncated_argmax_equal_numpys_with_ties():
    rng = np.random.default_rng(7)
    for trial in range(6):
        x = (rng.standard_normal((19, 9, 11)) * rng.uniform(0.3, 4)).astype(np.float32)
        if trial % 2:
            x = np.round(x * 2) / 2  # many ties, before and after truncation
        index, best = metrics.argmax_classes(x)
        np.testing.assert_array_equal(index, x.argmax(axis=0))
        np.testing.assert_array_equal(metrics.truncated_argmax(x, best), np.trunc(x).argmax(axis=0))
