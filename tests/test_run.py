"""``surgery.run``: keep or revert per pass, bisection of a pipeline that fails only in combination, resume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from graph_builders import parse

from surgery.modelref import NO_ZOO
from surgery.pass_infra import Pass, PassResult, option
from surgery.run import KEPT, NO_CHANGE, REVERTED, RunEvents, RunRequest, VerifySettings, run
from surgery.targets import ModelSpec

TINY = """
<ir_version: 7, opset_import: ["" : 13]>
tiny (float[N, 4] x) => (float[N, 4] y) {
    m = MatMul (x, w)
    y = Add (m, b)
}
"""


def tiny_model(path):
    rng = np.random.default_rng(0)
    model = parse(TINY, w=rng.standard_normal((4, 4)).astype(np.float32), b=np.full(4, 0.5, np.float32))
    onnx.save(model, path)
    return path


@dataclass(frozen=True, kw_only=True)
class NudgeBias(Pass):
    """b → b + delta: an 'exact' pass whose error is within tolerance alone (it stands for float drift)."""

    name: ClassVar[str] = "nudge_bias"
    exact: ClassVar[bool] = True
    delta: float = option(6e-4, help="what to add to the bias")

    def call(self, model: onnx.ModelProto) -> PassResult:
        for t in model.graph.initializer:
            if t.name == "b":
                value = onnx.numpy_helper.to_array(t) + np.float32(self.delta)
                t.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), "b"))
        return PassResult(model, changed=True, counts={"Add": 1})


@dataclass(frozen=True, kw_only=True)
class BreakWeights(Pass):
    """w → -w: an exact pass that lies (it changes the outputs)."""

    name: ClassVar[str] = "break_weights"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        for t in model.graph.initializer:
            if t.name == "w":
                t.CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(t), "w"))
        return PassResult(model, changed=True, counts={"MatMul": 1})


@dataclass(frozen=True, kw_only=True)
class Nothing(Pass):
    """Nothing → nothing."""

    name: ClassVar[str] = "nothing"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        return PassResult(model, changed=False, notes=["nothing to do"])


REGISTRY = {"nudge_bias": NudgeBias, "break_weights": BreakWeights, "nothing": Nothing}


@pytest.fixture
def targets():
    from surgery.cli._targets import targets as table

    return table()


def request(path, tmp_path, passes, **kwargs):
    base = dict(model=ModelSpec(str(path)), passes=tuple(passes), batches=(1,), precision=0.5, max_time=0.3,
                perf_gate=False, verify=VerifySettings(atol=1e-3, rtol=1e-3), runs_root=str(tmp_path / "runs"))
    base.update(kwargs)
    return RunRequest(**base)


def test_a_pass_built_to_fail_is_reverted_and_the_run_goes_on(tmp_path, targets):
    path = tiny_model(tmp_path / "tiny.onnx")
    result = run(request(path, tmp_path, ["break_weights", "nothing", ("nudge_bias", {"delta": "0.0001"})]),
                 zoo=NO_ZOO, registry=REGISTRY, targets=targets)
    decisions = [(o.name, o.decision) for o in result.passes]
    assert decisions == [("break_weights", REVERTED), ("nothing", NO_CHANGE), ("nudge_bias", KEPT)]
    assert "exact but changed output" in result.passes[0].why
    assert result.ok and "1/3 passes kept" in result.summary and "reverted: break_weights" in result.summary
    after = onnx.load(result.folder / "after.onnx")
    w = next(t for t in after.graph.initializer if t.name == "w")
    original = next(t for t in onnx.load(path).graph.initializer if t.name == "w")
    assert np.array_equal(onnx.numpy_helper.to_array(w), onnx.numpy_helper.to_array(original))
    record = json.loads((result.folder / "run.json").read_text())
    assert [p["decision"] for p in record["passes"]] == ["reverted", "no change", "kept"]
    assert {r["extra"]["side"] for r in record["perf"]} == {"before", "after"}
    assert (result.folder / "report.html").stat().st_size > 10_000


def test_strict_fails_instead_of_reverting(tmp_path, targets):
    from surgery.errors import VerificationError

    path = tiny_model(tmp_path / "tiny.onnx")
    with pytest.raises(VerificationError, match="break_weights"):
        run(request(path, tmp_path, ["break_weights"], strict=True), zoo=NO_ZOO, registry=REGISTRY, targets=targets)


def test_bisection_names_the_pass_whose_drift_crosses_the_tolerance(tmp_path, targets):
    path = tiny_model(tmp_path / "tiny.onnx")
    notices = []
    # each nudge alone is within atol=rtol=1e-3 of the model before it; together they are not
    result = run(request(path, tmp_path, ["nudge_bias", "nothing", "nudge_bias", "nudge_bias"]), zoo=NO_ZOO,
                 registry=REGISTRY, targets=targets, events=RunEvents(on_notice=notices.append))
    decisions = [o.decision for o in result.passes]
    assert decisions[0] == KEPT and decisions[2] == REVERTED
    assert "bisection" in result.passes[2].why and "pass 2 (nudge_bias)" in result.passes[2].why
    assert any(n.startswith("bisection:") for n in notices)
    record = json.loads((result.folder / "run.json").read_text())
    assert "first whose prefix fails" in record["extra"]["bisection"]
    # what is left passes the whole-run check: at most one nudge survives beside the first... or none after it
    kept = [o for o in result.passes if o.decision == KEPT]
    assert len(kept) <= 2


def test_an_interrupted_run_leaves_no_partial_outputs_and_a_rerun_resumes(tmp_path, targets):
    path = tiny_model(tmp_path / "tiny.onnx")
    req = request(path, tmp_path, [("nudge_bias", {"delta": "0.0001"})])

    def stop(text):
        if text.startswith("before vs after"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(req, zoo=NO_ZOO, registry=REGISTRY, targets=targets, events=RunEvents(on_phase=stop))
    (folder,) = (tmp_path / "runs").iterdir()
    assert not (folder / "run.json").exists() and not (folder / "report.html").exists()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    result = run(req, zoo=NO_ZOO, registry=REGISTRY, targets=targets)
    assert result.folder == folder  # the unfinished run resumed in place
    assert {"before", "pass-01-nudge_bias", "after"} <= set(result.reused)
    assert (folder / "run.json").exists() and result.ok
    again = run(req, zoo=NO_ZOO, registry=REGISTRY, targets=targets)
    assert again.folder != folder and "bench" in again.reused  # a finished run's steps are reused by the next


def test_unknown_passes_fail_before_any_work(tmp_path, targets):
    from surgery.errors import UsageError

    path = tiny_model(tmp_path / "tiny.onnx")
    with pytest.raises(UsageError, match="unknown pass 'nudge'"):
        run(request(path, tmp_path, ["nudge"]), zoo=NO_ZOO, registry=REGISTRY, targets=targets)
    assert not (tmp_path / "runs").exists()
