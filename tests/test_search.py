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


def fake_measure(calls: list | None = None, *, cost=None, jitter: float = 0.01, drift: float = 0.3, seed: int = 0):
    """Measures variants as the harness does: rotating rounds that share the host's drift, one pairing per batch."""
    cost = cost or fake_latency
    rng = np.random.default_rng(seed)

    def measure(variants, batches):
        if calls is not None:
            calls.append((len(variants), list(batches)))
        out: list[list[PerfRecord]] = [[] for _ in variants]
        for b in batches:
            rounds, per = 20, 15
            lat: list[list[float]] = [[] for _ in variants]
            for _ in range(rounds):
                host = 1.0 + drift * rng.random()  # a busy neighbour, the same for every variant of the round
                for k, v in enumerate(variants):
                    ms = cost(v.model, v.options) * host * (1 + jitter * rng.standard_normal(per))
                    lat[k].extend(ms.tolist())
            for k in range(len(variants)):
                out[k].append(finish_record(PerfRecord(
                    target="fake", batch=b, effective_batch=b, latencies_ms=lat[k], iterations=len(lat[k]),
                    rounds=[per] * rounds, pairing={"id": f"fake/{b}", "index": k, "size": len(variants)},
                    stop="precision", half_width=0.01)))
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


def test_opset_changes_and_channel_alignment_are_tried_only_when_named():
    names = {c.name for c in pass_candidates(PASSES)}
    assert "pass convert_opset" not in names and "pass align_channels" not in names
    assert [c.name for c in pass_candidates(PASSES, ["convert_opset"])] == ["pass convert_opset"]


@dataclass(frozen=True, kw_only=True)
class RenameNodes(Pass):
    """Renames every node: changes the model, not its speed."""

    name: ClassVar[str] = "rename_nodes"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        for k, node in enumerate(model.graph.node):
            node.name = f"renamed_{k}"
        return PassResult(model, changed=True, counts={"nodes": len(model.graph.node)})


def test_a_three_percent_gain_is_kept_and_a_change_within_noise_is_reverted():
    def cost(model, options):  # simplify removes the padding: 3 % of the time
        return 1.0 + 0.03 * sum(n.op_type == "Identity" for n in model.graph.node) / 30

    kept = search(padded_model(30), options=OrtOptions(), measure=fake_measure(cost=cost, drift=0.5),
                  candidates=[Candidate.for_pass(PASSES["simplify"]())], precision=0.01)
    trial = kept.trials[0]
    assert trial.decision == KEPT and trial.ratio.paired
    assert trial.ratio.ratio == pytest.approx(1.03, rel=0.005) and trial.ratio.low > 1.0
    same = search(padded_model(0), options=OrtOptions(), measure=fake_measure(cost=cost, drift=0.5),
                  candidates=[Candidate(kind="pass", name="pass rename_nodes", pass_=RenameNodes())], precision=0.01)
    trial = same.trials[0]
    assert trial.decision == REVERTED and trial.reason.startswith("no significant change")
    assert "within noise" in trial.reason


def test_a_comparison_that_ran_out_of_time_says_so():
    def short_of_time(variants, batches):  # very noisy rounds, and the harness hit its time cap
        out = fake_measure(jitter=0.8, drift=0.0)(variants, batches)
        for per in out:
            for r in per:
                r.stop, r.half_width = "max-time", 0.2
        return out

    result = search(padded_model(0), options=OrtOptions(), measure=short_of_time,
                    candidates=[Candidate.for_setting({"intra_op_threads": 1})], precision=0.01)
    assert "stopped at the time cap" in result.trials[0].reason and "±1%" in result.trials[0].reason


def test_a_gain_under_the_minimum_effect_is_reverted_and_the_reason_says_so():
    def cost(model, options):  # simplify removes the padding: 3 % of the time
        return 1.0 + 0.03 * sum(n.op_type == "Identity" for n in model.graph.node) / 30

    result = search(padded_model(30), options=OrtOptions(), measure=fake_measure(cost=cost, drift=0.5),
                    candidates=[Candidate.for_pass(PASSES["simplify"]())], precision=0.01, min_effect=0.05)
    trial = result.trials[0]
    assert trial.ratio.low > 1.0 and trial.decision == REVERTED  # a real 3 % gain, under a 5 % minimum effect
    assert "excludes 1 but not 1 ± 5%" in trial.reason and "within noise" not in trial.reason
