"""Plans: exact shell lines for --dry-run, requirement checks, execution with per-batch failure groups."""

from __future__ import annotations

import pytest
from surgery.tools.plan import check_requirements, execute

from surgery.errors import ToolError, ToolNotFoundError
from surgery.targets.plan import Plan, Step, StepInfo


def test_render_is_a_runnable_script():
    plan = Plan("tune m", notes=["CANN 7.0.0"])
    plan.add(Step(("aoe", "--model=../m.onnx", "--job_type=2"), "tune", "aoe", env=(("TUNE_BANK_PATH", "../b 1"),),
                  cwd="w/aoe", makedirs=("w/b 1",)))
    plan.add(Step(("atc", "--out_nodes=a:0;b:0"), "compile", "atc", skip="cached"))
    text = plan.render()
    assert text.splitlines() == [
        "# tune m", "# note: CANN 7.0.0", "", "# [1] tune",
        "mkdir -p 'w/b 1' w/aoe && (cd w/aoe && TUNE_BANK_PATH='../b 1' aoe --model=../m.onnx --job_type=2)",
        "", "# [2] compile", "# skipped: cached", "# atc '--out_nodes=a:0;b:0'"]
    assert plan.requirements() == ["aoe"]


def test_missing_tools_are_found_before_anything_runs(fake_bin, tmp_path):
    fake_bin("atc", "print('x')")
    plan = Plan("p", [Step(("atc",), "a", "atc"), Step(("trtexec",), "t", "trtexec")])
    with pytest.raises(ToolNotFoundError, match=r"trtexec not found.*TensorRT"):
        execute(plan, log_dir=tmp_path / "logs")
    assert not (tmp_path / "logs").exists()
    assert check_requirements(Plan("p", [Step(("atc",), "a", "atc")]))["atc"].endswith("fakebin/atc")


def test_a_failure_skips_the_rest_of_its_group_only(fake_bin, tmp_path):
    fake_bin("atc", "print(argv[0]); sys.exit(1 if argv[0] == 'bad' else 0)")
    plan = Plan("p", [Step(("atc", "bad"), "1", "atc", group="bs8"), Step(("atc", "after"), "2", "atc", group="bs8"),
                      Step(("atc", "good"), "3", "atc", group="bs1")])
    results = execute(plan, log_dir=tmp_path / "logs")
    assert [r.ok for r in results] == [False, False, True]
    assert results[1].skipped == "an earlier step of bs8 failed"
    assert isinstance(results[0].error, ToolError)
    assert (tmp_path / "logs" / "03-atc.log").read_text() == "good\n"


def test_an_ungrouped_failure_stops_the_plan(fake_bin, tmp_path):
    fake_bin("atc", "sys.exit(3)")
    with pytest.raises(ToolError, match="exit code 3"):
        execute(Plan("p", [Step(("atc",), "1", "atc"), Step(("atc",), "2", "atc")]), log_dir=tmp_path)


def test_internal_steps_run_in_process(tmp_path):
    seen = []
    plan = Plan("p", [Step(("surgery", "apply", "icnet"), "export", "internal", info=StepInfo("export"))])
    results = execute(plan, log_dir=tmp_path, internal={"export": seen.append})
    assert results[0].ok and seen[0].argv[1] == "apply"
    with pytest.raises(ToolError, match="no handler"):
        execute(plan, log_dir=tmp_path)


def test_timeout_per_step(fake_bin, tmp_path):
    fake_bin("atc", "time.sleep(20)")
    results = execute(Plan("p", [Step(("atc",), "hang", "atc", group="bs1")]), log_dir=tmp_path, timeout=0.5)
    assert "timed out" in str(results[0].error)
