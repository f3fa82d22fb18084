"""The AOE / auto_tune flow over batch sizes, with fake atc, aoe and ais_bench.

(Named test_aoe_tune.py, not test_tune.py: pytest runs without packages here, and the
tune verb's own tests may take that basename.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from surgery.tools.ascend import aoe_flow as tune

from surgery.errors import ToolNotFoundError, UsageError


@pytest.fixture
def tools(fake_ascend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.onnx").write_bytes(b"not parsed by the fakes")
    return fake_ascend


def config(**kwargs):
    base = dict(onnx="m.onnx", name="m", soc_version="Ascend310P3",
                input_shapes={b: {"x": (b, 3, 8, 8)} for b in (1, 4, 8)}, batches=(1, 4), workdir="work",
                onnx_digest="ab" * 32, cann_version="7.0.0", loop=3)
    base.update(kwargs)
    return tune.TuneConfig(**base)


def test_plan_order_and_isolated_banks():
    cfg = config()
    plan = tune.build_plan(cfg)
    kinds = [(s.info.kind, s.info.build or s.info.job_type) for s in plan.steps[:6]]
    assert kinds == [("atc", "untuned"), ("aoe", 1), ("aoe", 2), ("atc", "aoe"), ("ais_bench", "untuned"),
                     ("ais_bench", "aoe")]
    banks = {tune.bank_dir(cfg, b) for b in (1, 4)}
    assert len(banks) == 2
    # the bank key changes with what the tuning depends on
    assert tune.bank_dir(config(job_types=(2,)), 1) != tune.bank_dir(cfg, 1)
    assert tune.bank_dir(config(soc_version="Ascend310"), 1) != tune.bank_dir(cfg, 1)
    assert tune.bank_dir(config(cann_version="6.3.RC1"), 1) != tune.bank_dir(cfg, 1)
    tuned_atc = plan.steps[3]
    assert dict(tuned_atc.env)["TUNE_BANK_PATH"] == str(tune.bank_dir(cfg, 1))
    assert "TUNE_BANK_PATH" not in dict(plan.steps[0].env)


def test_tune_runs_and_records_bank_provenance(tools):
    cfg = config()
    report = tune.run_tune(cfg)
    rows = report.rows()
    assert [r["batch"] for r in rows] == [1, 4]
    assert rows[0]["untuned"] == pytest.approx(500.0) and rows[0]["tuned"] == pytest.approx(625.0)
    assert rows[1]["ratio"] == pytest.approx(1.25)
    tuned = [r for r in report.perf if r.settings["build"] == "aoe"]
    bank = tuned[0].settings["bank"]
    assert bank["digest"] and bank["soc_version"] == "Ascend310P3" and bank["cann_version"] == "7.0.0"
    assert bank["path"] == str(tune.bank_dir(cfg, 1)) and bank["cached"] is False
    assert len(tuned[0].latencies_ms) == 3
    manifest = json.loads((tune.bank_dir(cfg, 1) / tune.MANIFEST).read_text())
    assert manifest["complete"] and manifest["key"]["job_types"] == [1, 2]
    assert {i["task"] for i in report.banks[0]["improvements"] if "task" in i} == {"SGAT", "OPAT"}
    log = tools.read_text()
    assert log.count("aoe ") == 4
    assert "BANK=work/banks/m-bs1-" in log  # the tuned atc saw the bank


def test_rerun_reuses_the_tuned_bank(tools):
    tune.run_tune(config())
    before = tools.read_text().count("aoe ")
    plan = tune.build_plan(config())
    assert all(s.skip for s in plan.steps if s.info.kind == "aoe")
    report = tune.run_tune(config())
    assert tools.read_text().count("aoe ") == before  # hours of tuning skipped
    assert report.banks[0]["cached"] is True
    assert report.rows()[0]["ratio"] == pytest.approx(1.25)


def test_a_failed_batch_does_not_cost_the_others(tools):
    report = tune.run_tune(config(batches=(1, 8)))
    by_batch = {(r.batch, r.settings["build"]): r for r in report.perf}
    assert by_batch[(1, "aoe")].ok
    assert not by_batch[(8, "untuned")].ok and "E19999" in by_batch[(8, "untuned")].error
    assert not by_batch[(8, "aoe")].ok
    assert "aoe --framework=5 --model=../../../m.onnx --job_type=1 --output=m_bs8" not in tools.read_text()


def test_missing_aoe_fails_before_anything_runs(fake_ascend, tmp_path, monkeypatch):
    (tmp_path / "fakebin" / "aoe").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ToolNotFoundError, match=r"aoe not found.*set_env\.sh"):
        tune.run_tune(config())
    assert not (tmp_path / "calls.txt").exists()


def test_auto_tune_route(tools):
    cfg = config(method="auto_tune", cann_version="5.1.RC1", batches=(1,))
    plan = tune.build_plan(cfg)
    assert not any(s.info.kind == "aoe" for s in plan.steps)
    assert "--auto_tune_mode=RL,GA" in plan.steps[1].argv
    report = tune.run_tune(cfg)
    assert report.rows()[0]["ratio"] == pytest.approx(1.25)
    assert report.banks[0]["digest"]  # ATC wrote into the isolated bank
    # once tuned, a rerun compiles with the bank and without --auto_tune_mode
    assert "--auto_tune_mode=RL,GA" not in tune.build_plan(cfg).steps[1].argv


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "auto_tune", "cann_version": "6.0.1"}, "removed in CANN 6.0.1"),
    ({"method": "auto_tune", "cann_version": "7.0.RC1"}, "removed in CANN 6.0.1"),
    ({"job_types": (3,)}, "job types"),
    ({"job_types": (1, 1)}, "twice"),
    ({"batches": (16,)}, "no input shapes"),
    ({"method": "nas"}, "method"),
])
def test_bad_configs(kwargs, match):
    with pytest.raises(UsageError, match=match):
        config(**kwargs)


def test_unexported_model_never_hits_the_cache():
    cfg = config(onnx_digest=None)
    assert tune.bank_dir(cfg, 1).name.endswith("-new")
    assert tune.cached_bank(cfg, 1) is None
    assert "never reuses a cached bank" in tune.build_plan(cfg).render()
