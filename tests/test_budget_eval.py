"""Budget figures through the evaluation package: a zoo task's agreement and its labelled metric."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgery.models.recipes import HRNET_W18, UNETPP

from surgery.budget import Budget, OutputAgreement
from surgery.budget_eval import DatasetMetric, RecipeAgreement, evaluator_for
from surgery.errors import UsageError


def mask_net(bias: float) -> onnx.ModelProto:
    """actual_input_1[N,3,96,96] → 1x1 Conv (mean of the channels, + bias) → output1[N,1,96,96]: a UNet++ stand-in."""
    w = numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w")
    b = numpy_helper.from_array(np.array([bias], np.float32), "b")
    node = helper.make_node("Conv", ["actual_input_1", "w", "b"], ["output1"], name="conv")
    graph = helper.make_graph([node], "mask", [helper.make_tensor_value_info("actual_input_1", TensorProto.FLOAT,
                                                                             ["N", 3, 96, 96])],
                              [helper.make_tensor_value_info("output1", TensorProto.FLOAT, ["N", 1, 96, 96])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def dsb(tmp_path_factory) -> str:
    from surgery.eval.generate import make_dataset

    root = tmp_path_factory.mktemp("dsb") / "dsb2018"
    make_dataset("dsb2018", root, 4, seed=1)
    return str(root)


def test_recipe_agreement_is_the_tasks_figure():
    judge = RecipeAgreement(UNETPP, samples=4, seed=3)
    score = judge.bind(mask_net(0.5))
    assert score(mask_net(0.5)) == pytest.approx(1.0)  # a copy of the reference agrees exactly
    moved = score(mask_net(0.52))  # the raw-logit threshold moves a little: the mask IoU drops a little
    assert 0.0 < moved < 1.0
    assert "mask IoU vs before (unetpp, guide preprocessing) on 4 generated dsb2018-like images" in judge.describe()


def test_recipe_agreement_on_a_dataset_folder(dsb):
    judge = RecipeAgreement(UNETPP, samples=3, data=dsb)
    assert judge.bind(mask_net(0.5))(mask_net(0.5)) == pytest.approx(1.0)
    assert "3 images of" in judge.describe()


def test_dataset_metric_in_points(dsb):
    metric = DatasetMetric(UNETPP, "iou", dsb)
    score = metric.bind(mask_net(0.5))
    before, after = score(mask_net(0.5)), score(mask_net(100.0))  # every pixel positive: IoU = mask coverage
    assert 0 <= after <= 100 and before != after
    assert "iou (points, unetpp guide metric)" in metric.describe()
    with pytest.raises(UsageError, match="no evaluation figure for budget metric 'agreement'"):
        DatasetMetric(UNETPP, "agreement", dsb)


def test_evaluator_for_picks_by_budget_and_model(dsb):
    assert isinstance(evaluator_for(Budget("agreement", 0.99), UNETPP), RecipeAgreement)
    assert isinstance(evaluator_for(Budget("agreement", 0.99), None), OutputAgreement)
    assert isinstance(evaluator_for(Budget("iou", -0.5), UNETPP, data=dsb), DatasetMetric)
    with pytest.raises(UsageError, match="labelled dataset"):
        evaluator_for(Budget("top1", -0.5), HRNET_W18)
