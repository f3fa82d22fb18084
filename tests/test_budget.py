from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import onnx
import pytest
from int8_nets import conv_net
from surgery.passes import QuantizeInt8

from surgery.apply import apply
from surgery.budget import (
    Budget,
    BudgetCheck,
    OutputAgreement,
    Revertible,
    fallback,
    judge,
    sensitivity,
    task_agreement,
)
from surgery.calibration import Generated
from surgery.errors import UsageError, VerificationError
from surgery.pass_infra import Pass, PassResult, option

# --- a pass and a metric that need no dataset: each "layer" the pass damages costs a known amount

COSTS = {"a": 0.01, "b": 0.20, "c": 0.05}


@dataclass(frozen=True, kw_only=True)
class Damage(Pass):
    """Marks layers a, b, c as damaged in the model's doc string (inexact)."""

    name: ClassVar[str] = "damage"
    exact: ClassVar[bool] = False
    kept: tuple[str, ...] = option((), help="layers left alone")

    def call(self, model: onnx.ModelProto) -> PassResult:
        damaged = [k for k in COSTS if k not in self.kept]
        model.doc_string = json.dumps(damaged)
        return PassResult(model, changed=True, counts={"damaged": len(damaged)})

    def layers(self, model: onnx.ModelProto) -> list[str]:
        return json.loads(model.doc_string or "[]")

    def keeping(self, layers: Sequence[str], *, cache_dir: str | None = None) -> Damage:
        return replace(self, kept=tuple(dict.fromkeys((*self.kept, *layers))))


class DocStringMetric:
    """agreement = 1 - the costs of the damaged layers; a labelled metric in points = 80 - 100 * costs."""

    def __init__(self, points: bool = False):
        self.points, self.calls = points, 0

    def bind(self, reference: onnx.ModelProto):
        def score(model: onnx.ModelProto) -> float:
            self.calls += 1
            lost = sum(COSTS[k] for k in json.loads(model.doc_string or "[]"))
            return 80.0 - 100 * lost if self.points else 1.0 - lost

        return score

    def describe(self) -> str:
        return "the doc string"


def tiny() -> onnx.ModelProto:
    return conv_net()


# --- the budget itself


@pytest.mark.parametrize(("text", "metric", "limit"), [("top1=-0.5", "top1", -0.5), ("mIoU=-1", "miou", -1.0),
                                                         ("agreement=0.99", "agreement", 0.99), ("iou=0", "iou", 0.0)])
def test_parse(text, metric, limit):
    budget = Budget.parse(text)
    assert (budget.metric, budget.limit) == (metric, limit)


@pytest.mark.parametrize(("text", "message"), [
    ("top1", "expected METRIC=VALUE"), ("top1=x", "'x' is not a number"), ("top1=0.5", "must be <= 0"),
    ("agreement=1.5", r"in \(0, 1\]"), ("speed=-1", "unknown budget metric 'speed'"), ("top1=nan", "finite")])
def test_parse_errors(text, message):
    with pytest.raises(UsageError, match=message):
        Budget.parse(text)


def test_holds():
    drop = Budget("top1", -0.5)
    assert drop.holds(80.0, 79.5) and not drop.holds(80.0, 79.49) and drop.holds(80.0, 81.0)
    floor = Budget("agreement", 0.99)
    assert floor.holds(1.0, 0.99) and not floor.holds(1.0, 0.989)
    assert "0.98" in judge(floor, lambda m: 0.98, tiny(), tiny(), before=1.0).text()


def test_judgement_text_names_the_figure():
    j = judge(Budget("top1", -0.5), lambda m: 78.9, tiny(), tiny(), before=80.1)
    assert not j.holds
    assert j.text() == "top1 80.10 → 78.90 (-1.20 points), over the budget of -0.5"


# --- sensitivity and fallback, with the dataset-free metric


def test_sensitivity_orders_layers_most_costly_first():
    p = Damage()
    damaged = tiny()
    p(damaged)
    metric = DocStringMetric().bind(tiny())
    costs = sensitivity(p, tiny(), p.layers(damaged), metric, metric(damaged))
    assert [c.layer for c in costs] == ["b", "c", "a"]
    assert costs[0].gain == pytest.approx(0.20)


@pytest.mark.parametrize(("limit", "kept"), [(0.9, ["b"]), (0.98, ["b", "c"]), (1.0, ["b", "c", "a"])])
def test_fallback_returns_layers_until_the_budget_holds(limit, kept):
    p, reference = Damage(), tiny()
    changed = tiny()
    p(changed)
    metric = DocStringMetric().bind(reference)
    out = fallback(p, Budget("agreement", limit), reference, changed, metric, 1.0)
    assert out.holds and out.kept == kept
    assert json.loads(out.model.doc_string) == [k for k in COSTS if k not in kept]
    assert out.trail[0] == (0, pytest.approx(0.74))


def test_fallback_gives_up_after_max_layers():
    p, reference = Damage(), tiny()
    changed = tiny()
    p(changed)
    out = fallback(p, Budget("agreement", 0.99), reference, changed, DocStringMetric().bind(reference), 1.0,
                   max_layers=1)
    assert not out.holds and out.model is None and out.kept == ["b"]


class Interplay(DocStringMetric):
    """Keeping 'c' alone helps, keeping it together with 'b' hurts: costs that do not add up."""

    def bind(self, reference: onnx.ModelProto):
        def score(model: onnx.ModelProto) -> float:
            damaged = set(json.loads(model.doc_string or "[]"))
            lost = sum(COSTS[k] for k in damaged)
            if "b" not in damaged and "c" not in damaged:
                lost += 0.10
            return 1.0 - lost

        return score


def test_fallback_keeps_a_layer_only_when_it_helps():
    p, reference = Damage(), tiny()
    changed = tiny()
    p(changed)
    out = fallback(p, Budget("agreement", 0.95), reference, changed, Interplay().bind(reference), 1.0)
    assert out.kept == ["b", "a"] and out.rejected == ["c"]  # c alone gained 0.05; on top of b it costs 0.05
    assert [round(f, 2) for _, f in out.trail] == [0.74, 0.94, 0.95] and out.holds


def test_revertible_protocol():
    assert isinstance(Damage(), Revertible) and isinstance(QuantizeInt8(), Revertible)


# --- the instrument, through surgery.apply


def test_budget_holds_and_is_recorded():
    result = apply(tiny(), [Damage(kept=("b", "c"))], extra_instruments=[BudgetCheck(Budget("agreement", 0.98),
                                                                                DocStringMetric())])
    figures = result.steps[0].figures["budget"]
    assert figures["holds"] and figures["after"] == pytest.approx(0.99)


def test_budget_fails_the_step_naming_the_figure():
    check = BudgetCheck(Budget("top1", -0.5), DocStringMetric(points=True))
    with pytest.raises(VerificationError, match=r"pass damage: top1 80.00 → 54.00 \(-26.00 points\), over the "
                                                r"budget of -0.5 \(add --fallback"):
        apply(tiny(), [Damage()], extra_instruments=[check])


def test_fallback_replaces_the_output_and_says_which():
    check = BudgetCheck(Budget("top1", -10), DocStringMetric(points=True), fallback=True)
    result = apply(tiny(), [Damage()], extra_instruments=[check])
    step = result.steps[0]
    assert json.loads(result.model.doc_string) == ["a", "c"]
    assert step.options["kept"] == ["b"] and step.counts == {"damaged": 2}
    assert step.figures["budget"]["fallback"]["kept_float"] == ["b"]
    assert "returned 1 layer(s) to float, most costly first: b" in step.notes[-1]


def test_fallback_that_cannot_reach_the_budget_fails():
    check = BudgetCheck(Budget("agreement", 0.999), DocStringMetric(), fallback=True, max_layers=2)
    with pytest.raises(VerificationError, match=r"returning the 2 layer\(s\) that helped \(b, c\) leaves the "
                                                r"agreement at 0\.99"):
        apply(tiny(), [Damage()], extra_instruments=[check])


def test_exact_passes_are_not_judged():
    from surgery.passes import EliminateDeadCode

    result = apply(tiny(), [EliminateDeadCode()], extra_instruments=[BudgetCheck(Budget("agreement", 0.99),
                                                                           DocStringMetric())])
    assert "budget" not in result.steps[0].figures


# --- quantize_int8 on a net with one layer that quantizes badly


@pytest.fixture(scope="module")
def judged_on() -> OutputAgreement:
    return OutputAgreement(Generated(seed=1000), samples=32)


def test_int8_over_budget_fails_without_fallback(judged_on):
    check = BudgetCheck(Budget("agreement", 0.99), judged_on)
    with pytest.raises(VerificationError, match=r"pass quantize_int8: agreement 0\.\d+ vs the model before, below "
                                                r"the budget 0\.99 \(add --fallback"):
        apply(conv_net(outlier=200.0), [QuantizeInt8(samples=8)], extra_instruments=[check])


def test_int8_fallback_returns_the_bad_layer_first(judged_on):
    check = BudgetCheck(Budget("agreement", 0.99), judged_on, fallback=True)
    result = apply(conv_net(outlier=200.0), [QuantizeInt8(samples=8)], extra_instruments=[check])
    fell = result.steps[0].figures["budget"]["fallback"]
    assert fell["sensitivity"][0]["layer"] == "conv_b"  # the layer with the outlier weights costs the most
    assert fell["sensitivity"][0]["gain"] > 0.5
    assert fell["kept_float"][0] == "conv_b" and fell["holds"]
    assert fell["judgement"]["after"] >= 0.99
    # the model written is the variant: conv_b's weight is float again, the others stay int8
    made = {o: n for n in result.model.graph.node for o in n.output}
    conv_b = next(n for n in result.model.graph.node if n.name == "conv_b")
    assert conv_b.input[1] not in made
    assert result.steps[0].counts["float Conv"] >= 1 and result.steps[0].counts["int8 Conv"] >= 1
    assert result.steps[0].figures["parity"]["outputs"]["y"]["cosine"] > 0.99  # verified after the swap


def test_int8_within_budget_on_a_well_behaved_net(judged_on):
    result = apply(conv_net(), [QuantizeInt8(samples=8)],
                   extra_instruments=[BudgetCheck(Budget("agreement", 0.9), judged_on)])
    assert result.steps[0].figures["budget"]["holds"]


# --- task agreement


def test_task_agreement_kinds():
    rng = np.random.default_rng(0)
    scores = rng.random((4, 10))
    flipped = scores.copy()
    flipped[0] = scores[0][::-1]
    assert task_agreement(scores, scores) == ("top1", 1.0)
    assert task_agreement(scores, flipped)[1] == 0.75  # reversed scores: the top class becomes another one
    logits = rng.standard_normal((1, 3, 4, 4))
    assert task_agreement(logits, logits) == ("pixels", 1.0)
    mask = np.zeros((1, 1, 2, 2))
    mask[0, 0, 0, 0] = 2.0
    other = mask.copy()
    other[0, 0, 1, 1] = 2.0
    assert task_agreement(mask, other) == ("mask_iou", 0.5)
    assert task_agreement(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2))) == ("mask_iou", 1.0)
    probabilities = np.full((1, 1, 2, 2), 0.4)
    assert task_agreement(probabilities, probabilities + 0.2)[1] == 0.0  # threshold 0.5 for [0, 1] maps
    assert task_agreement(np.arange(4), np.arange(4) + 1) == ("labels", 0.0)


# --- surgery tune: quantize_int8 as a candidate, kept only within budget and when faster


def _fake_measure(models, batches):
    """int8 twice as fast as float, with a little seeded jitter: the search's decision rests on the budget."""
    from surgery.records import PerfRecord
    from surgery.targets.measure import finish_record

    rng = np.random.default_rng(0)
    out = []
    for m in models:
        int8 = any(n.op_type == "QuantizeLinear" for n in m.model.graph.node)
        latencies = list((5.0 if int8 else 10.0) + rng.normal(0, 0.05, 400))
        out.append([finish_record(PerfRecord(target="ort-cpu", batch=b, effective_batch=b,
                                             latencies_ms=latencies, iterations=400)) for b in batches])
    return out


@pytest.mark.parametrize(("net", "kept"), [(conv_net, True), (lambda: conv_net(outlier=200.0), False)])
def test_tune_keeps_int8_only_within_budget(judged_on, net, kept):
    from surgery.passes import PASSES

    from surgery.budget_eval import quantize_candidate
    from surgery.search import FAILED, KEPT, search

    candidate = quantize_candidate(PASSES, Budget("agreement", 0.9), None, samples=16)
    result = search(net(), options=None, measure=_fake_measure, candidates=[candidate])
    trial = result.trials[0]
    assert trial.candidate == "pass quantize_int8 within agreement=0.9"
    if kept:
        assert trial.decision == KEPT and any(n.op_type == "QuantizeLinear" for n in result.model.graph.node)
    else:
        assert trial.decision == FAILED and "below the budget 0.9" in trial.reason
        assert not any(n.op_type == "QuantizeLinear" for n in result.model.graph.node)
