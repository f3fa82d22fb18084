"""`surgery run` on a zoo model end to end: generated data, paired bench, report in Chromium; vendor plans."""

from __future__ import annotations

import json

import pytest
from browser import body_attributes, needs_chromium

from surgery.cli.main import main
from surgery.report import SECTIONS

pytest.importorskip("torch", reason="exports the zoo model (pip install torch==2.13.0)")


@pytest.fixture(scope="module")
def unetpp_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    argv = ["run", "unetpp", "--generate", "2", "--batch", "1,2", "--precision", "0.5", "--max-time", "0.5",
            "--runs", str(runs)]
    return runs, argv, main(argv)


def test_unetpp_end_to_end_on_generated_data(unetpp_run, capsys):
    runs, _, rc = unetpp_run
    assert rc == 0
    (folder,) = runs.iterdir()
    assert folder.name.startswith("unetpp-")
    for name in ("before.onnx", "after.onnx", "run.json", "report.html", "manifest.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "run.json").read_text())
    assert record["command"] == "run" and record["status"] == "PASSED"
    (p,) = record["passes"]
    assert p["name"] == "resize_nearest" and p["verification"]["status"] == "verified"
    assert p["fidelity"].startswith("mask IoU vs before")
    assert p["speed"]["batch"] == 1 and p["speed"]["paired"]  # the per-pass "significantly slower?" check ran
    # kept, unless the paired check called it slower: nearest and bilinear are within noise of each other at
    # this size, so "slower" is a false positive, about 1 in 40 by the interval's level and more often when the
    # load changes under the measurement (this suite runs in parallel); the revert must then say why
    if p["speed"]["verdict"] == "slower":
        assert p["decision"] == "reverted" and p["why"].startswith("significantly slower on ort-cpu: ×")
    else:
        assert p["decision"] == "kept", p
    sides = {(r["extra"]["side"], r["batch"]) for r in record["perf"]}
    assert sides == {("before", 1), ("after", 1), ("before", 2), ("after", 2)}
    pairing = {r["batch"]: r["pairing"]["id"] for r in record["perf"] if r["extra"]["side"] == "before"}
    assert all(r["pairing"]["id"] == pairing[r["batch"]] for r in record["perf"])  # measured together
    assert record["eval"]["kind"] == "fidelity" and record["eval"]["samples"] == 2 and record["eval"]["synthetic"]
    assert record["input_model"]["zoo"] == "unetpp"


@needs_chromium
def test_the_report_renders_with_every_section(unetpp_run):
    runs, _, _ = unetpp_run
    (folder,) = runs.iterdir()
    attrs = body_attributes(folder / "report.html")
    assert attrs["rendered"] == "yes" and attrs["errors"] == ""
    assert attrs["sections"] == str(len(SECTIONS)) and attrs["missing"] == ""
    assert int(attrs["plots"]) >= 3 and attrs["drawn"] == attrs["plots"]


def test_a_rerun_reuses_every_unchanged_step(unetpp_run, capsys):
    runs, argv, _ = unetpp_run
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reused unchanged steps: before, pass-01-resize_nearest, after, bench, eval" in out
    assert len(list(runs.iterdir())) == 2


def test_atc_dry_run_writes_the_npu_plan_and_runs_the_passes_here(tmp_path, model_path, capsys):
    rc = main(["run", str(model_path), "--target", "atc", "--dry-run", "--pass", "resize_nearest", "--batch", "1,4",
               "--soc", "Ascend310P3", "--runs", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert rc == 0, out
    (folder,) = (tmp_path / "runs").iterdir()
    plan = (folder / "plan.sh").read_text()
    assert plan.startswith("#!/usr/bin/env bash")
    for side in ("before", "after"):
        for batch in (1, 4):
            assert f"--model={side}.onnx" in plan
            assert f"{side}_bs{batch}" in plan
    assert plan.count("ais_bench") >= 4 and "--soc_version=Ascend310P3" in plan and str(folder) not in plan
    record = json.loads((folder / "run.json").read_text())
    assert record["passes"][0]["decision"] == "kept" and record["perf"] == []
    assert "NPU host plan" in out and out.strip().splitlines()[-1].startswith("PASSED")


def _summary(path, om, batch, median_ms):
    times = [median_ms * f for f in (0.98, 1.0, 1.01, 1.02, 0.99)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "args": {"model": om, "batchsize": batch, "loop": 5, "device": 0, "warmup_count": 1},
        "NPU_compute_time": {"min": min(times), "max": max(times), "mean": sum(times) / 5, "median": median_ms,
                             "percentile(99%)": max(times), "count": 5},
        "H2D_latency": {"min": 0.1, "max": 0.2, "mean": 0.15, "median": 0.15, "percentile(99%)": 0.2, "count": 5},
        "D2H_latency": {"min": 0.05, "max": 0.1, "mean": 0.06, "median": 0.06, "percentile(99%)": 0.1, "count": 5},
        "npu_compute_time_list": times, "throughput": 1000 * batch / median_ms}))
    return path


def test_npu_results_imported_into_a_dry_run_complete_its_report(tmp_path, model_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(model_path), "--target", "atc", "--dry-run", "--pass", "resize_nearest", "--batch", "1",
                 "--soc", "Ascend310P3", "--runs", str(runs)]) == 0
    (folder,) = runs.iterdir()
    before = _summary(folder / "npu" / "before" / "bs1_summary.json", "before_bs1.om", 1, 6.4)
    after = _summary(folder / "npu" / "after" / "bs1_summary.json", "after_bs1.om", 1, 5.1)
    capsys.readouterr()
    assert main(["import", str(before), str(after), "--run", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 NPU records imported" in out and out.strip().splitlines()[-1].startswith("PASSED")
    record = json.loads((folder / "run.json").read_text())
    assert sorted((r["extra"]["side"], r["batch"]) for r in record["perf"]) == [("after", 1), ("before", 1)]
    html = (folder / "report.html").read_text()
    assert "156.2" in html and "196.1" in html and "(unpaired)" in html  # 1000/6.4 and 1000/5.1 samples/s
    # -o has no place here, and a folder that is not a run is named
    assert main(["import", str(before), "--run", str(folder), "-o", str(tmp_path / "x.json")]) == 2
    assert main(["import", str(before), "--run", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_atc_without_cann_says_so_before_any_work(tmp_path, model_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    rc = main(["run", str(model_path), "--target", "atc", "--pass", "resize_nearest", "--runs", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "atc" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--pass", "resize_nearest", "--recipe"], "not both"),
    (["--aoe"], "--aoe is an option of vendor targets"),
    (["--fallback"], "--fallback keeps an accuracy budget"),
    (["--limit", "3"], "--limit applies to --data"),
    (["--generate", "0"], "--generate must be >= 1"),
    (["--pass", "resize_nearest", "--generate", "2"], "not a zoo model"),
    (["--budget", "top1=0.5"], "must be <= 0"),
])
def test_usage_errors(model_path, capsys, argv, message, tmp_path):
    assert main(["run", str(model_path), *argv, "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
