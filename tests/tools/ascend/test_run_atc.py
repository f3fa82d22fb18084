"""`surgery run --target atc` with CANN present (fake atc, aoe, ais_bench): before and after compiled and timed."""

from __future__ import annotations

import json

import onnx
from graph_builders import two_heads

from surgery.cli.main import main


def test_run_compiles_and_times_before_and_after(fake_ascend, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    onnx.save(two_heads(), tmp_path / "m.onnx")
    rc = main(["run", "m.onnx", "--target", "atc", "--pass", "resize_nearest", "--batch", "1,4",
               "--runs", "runs"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (folder,) = (tmp_path / "runs").iterdir()
    calls = fake_ascend.read_text()
    assert calls.count("atc ") == 4  # before and after, batch 1 and 4
    assert f"--model={folder}/before.onnx" in calls and f"--model={folder}/after.onnx" in calls
    plan = (folder / "plan.sh").read_text()  # the same commands, relative to the run folder that travels
    assert "--model=before.onnx" in plan and "--output=npu/after/after_bs4" in plan and str(folder) not in plan
    record = json.loads((folder / "run.json").read_text())
    rows = {(r["extra"]["side"], r["batch"]): r for r in record["perf"]}
    assert set(rows) == {("before", 1), ("before", 4), ("after", 1), ("after", 4)}
    assert all(r["target"] == "ais-bench" and r["throughput"] for r in rows.values())
    assert (folder / "plan.sh").is_file() and (folder / "report.html").is_file()
    assert "after vs before" in out.strip().splitlines()[-1]


def test_run_with_aoe_times_the_tuned_after_model(fake_ascend, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    onnx.save(two_heads(), tmp_path / "m.onnx")
    rc = main(["run", "m.onnx", "--target", "atc", "--aoe", "--pass", "resize_nearest", "--batch", "1",
               "--runs", "runs"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (folder,) = (tmp_path / "runs").iterdir()
    record = json.loads((folder / "run.json").read_text())
    sides = {r["extra"]["side"]: r for r in record["perf"]}
    assert {"before", "after", "after (untuned)"} <= set(sides)
    # the fake ais_bench times tuned oms 1.25x faster: after (tuned) vs before shows it
    assert sides["after"]["throughput"] > sides["before"]["throughput"]
    assert "aoe " in fake_ascend.read_text()
