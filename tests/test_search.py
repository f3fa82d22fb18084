from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from graph_builders import padded_model
from surgery.passes import PASSES
from surgery.tools.onnxruntime import OrtOptions

from surgery.errors import ToolError, UsageError
from surgery.pass_infra import Pass, PassResult
from surgery.records import PerfRecord
from surgery.search import FAILED, KEPT, REVERTED, SKIPPED, Candidate, pass_candidates, search
from surgery.targets.measure import finish_record


def fake_latency(model: onnx.ModelProto, options: OrtOptions) -> float:
    """A deterministic cost model: each node costs 0.1 ms; no graph optimization doubles it."""
    ms = 1.0 + 0.1 * len(model.graph.node)
    return ms * (2.0 if options.graph_optimization == "disable" else 1.0)


def fake_measure(calls: list | None = None):
    def measure(variants, batches):
        if calls is not None:
            calls.append((len(variants), list(batches)))
        out = []
        for k, v in enumerate(variants):
            rng = np.random.default_rng(k)
            per = []
            for b in batches:
                lat = fake_latency(v.model, v.options) * (1 + 0.01 * rng.standard_normal(300))
                per.append(finish_record(PerfRecord(target="fake", batch=b, effective_batch=b,
                                                    latencies_ms=lat.tolist(), iterations=300)))
            out.append(per)
        return out
    return measure


def test_tune_keeps_a_pass_that_helps_and_reverts_a_setting_that_hurts():
    calls: list = []
    cands = [Candidate.for_pass(PASSES["simplify"]()), Candidate.for_pass(PASSES["eliminate_dead_code"]()),
             Candidate.for_setting({"graph_optimization": "disable"}),
             Candidate.for_setting({"intra_op_threads": 1})]
    result = search(padded_model(30), options=OrtOptions(), measure=fake_measure(calls), candidates=cands,
                  batches=[1, 4])
    decisions = {t.candidate: t.decision for t in result.trials}
    assert decisions == {"pass simplify": KEPT, "pass eliminate_dead_code": SKIPPED,
                         "graph_optimization=disable": REVERTED, "intra_op_threads=1": REVERTED}
    simplify, dce, disable, threads = result.trials
    assert simplify.ratio.low > 1 and simplify.reason.startswith("faster: ×")
    assert disable.ratio.high < 1 and disable.reason.startswith("slower")
    assert threads.reason.startswith("no significant change")
    assert dce.reason.startswith("nothing to change") and dce.ratio is None
    assert [n.op_type for n in result.model.graph.node] == ["Relu", "Neg"]
    assert result.options == OrtOptions()
    assert [s.name for s in result.steps] == ["simplify"]
    # each comparison measures incumbent and candidate together; the final table covers every batch
    assert calls == [(2, [1])] * 3 + [(2, [1, 4])]
    assert [r.batch for r in result.after] == [1, 4]
    assert result.after[0].throughput > 3 * result.before[0].throughput


def test_tune_keeps_a_setting_that_helps():
    start = OrtOptions(graph_optimization="disable")
    result = search(padded_model(0), options=start, measure=fake_measure(),
                  candidates=[Candidate.for_setting({"graph_optimization": "all"})])
    assert result.trials[0].decision == KEPT
    assert result.options.graph_optimization == "all"


@dataclass(frozen=True, kw_only=True)
class BreaksOutputs(Pass):
    """Claims to be exact but turns Neg into Relu."""

    name: ClassVar[str] = "breaks_outputs"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        for node in model.graph.node:
            if node.op_type == "Neg":
                node.op_type = "Relu"
        return PassResult(model, changed=True, counts={"Neg": 1})


def test_a_pass_that_fails_verification_is_never_measured():
    calls: list = []
    result = search(padded_model(0), options=OrtOptions(), measure=fake_measure(calls),
                  candidates=[Candidate(kind="pass", name="pass breaks_outputs", pass_=BreaksOutputs())])
    trial = result.trials[0]
    assert trial.decision == FAILED and trial.reason.startswith("not verified")
    assert calls == [(2, [1])]  # the final before/after table only
    assert [n.op_type for n in result.model.graph.node] == ["Relu", "Neg"]


def test_a_model_that_cannot_run_stops_the_search():
    def broken(variants, batches):
        return [[PerfRecord(target="fake", batch=b, error="InvalidGraph") for b in batches] for _ in variants]

    with pytest.raises(ToolError, match="cannot run at batch 1: InvalidGraph"):
        search(padded_model(0), options=OrtOptions(), measure=broken,
             candidates=[Candidate.for_setting({"intra_op_threads": 1})])


def test_pass_candidates_are_exact_passes_that_need_no_options():
    names = {c.name for c in pass_candidates(PASSES)}
    assert {"pass simplify", "pass eliminate_dead_code"} <= names
    assert "pass resize_nearest" not in names and "pass fix_shapes" not in names
    with pytest.raises(UsageError, match="inexact"):
        pass_candidates(PASSES, ["resize_nearest"])
    with pytest.raises(UsageError, match="needs options"):
        pass_candidates(PASSES, ["fix_shapes"])
