"""Run folders: steps keyed by content, reused across reruns; interrupted steps leave no partial files."""

from __future__ import annotations

import json

import pytest

from surgery.errors import UsageError
from surgery.runfolder import MANIFEST, RunFolder, step_key


def test_step_runs_once_and_a_rerun_reuses_it(tmp_path):
    calls = []

    def export(out):
        calls.append(1)
        out.path("before.onnx").write_bytes(b"model")
        return {"digest": "d1"}

    run = RunFolder.open(tmp_path, "unetpp", "k1")
    key = step_key("export", {"variant": "x"}, {})
    assert run.step("export", key, export) == {"digest": "d1"}
    assert (run.path / "before.onnx").read_bytes() == b"model"
    assert run.step("export", key, export) == {"digest": "d1"} and len(calls) == 1
    run.finish()
    # a finished run: the next run gets a new folder, but the unchanged step is reused from the earlier one
    again = RunFolder.open(tmp_path, "unetpp", "k1")
    assert again.path != run.path
    assert again.step("export", key, export) == {"digest": "d1"} and len(calls) == 1
    assert (again.path / "before.onnx").read_bytes() == b"model" and again.reused == ["export"]
    # a changed input is a new key: the step runs again
    assert again.step("export", step_key("export", {"variant": "y"}, {}), export) and len(calls) == 2


def test_an_interrupted_step_leaves_no_partial_output_and_the_rerun_resumes(tmp_path):
    run = RunFolder.open(tmp_path, "m", "k")
    run.step("a", "ka", lambda out: out.path("a.txt").write_text("a") and "a")

    def crash(out):
        out.path("b.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.step("b", "kb", crash)
    assert not (run.path / "b.onnx").exists()
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]
    manifest = json.loads((run.path / MANIFEST).read_text())
    assert manifest["steps"]["a"]["status"] == "done" and manifest["steps"]["b"]["status"] == "running"
    resumed = RunFolder.open(tmp_path, "m", "k")
    assert resumed.path == run.path  # unfinished run with the same key: resumed in place
    ran = []
    resumed.step("a", "ka", lambda out: ran.append("a"))
    resumed.step("b", "kb", lambda out: ran.append("b") or (out.path("b.onnx").write_bytes(b"full") and None))
    assert ran == ["b"] and (run.path / "b.onnx").read_bytes() == b"full"


def test_an_explicit_folder_of_another_run_is_refused(tmp_path):
    RunFolder.open(tmp_path, "m", "k1", path=tmp_path / "r")
    with pytest.raises(UsageError, match="holds another run"):
        RunFolder.open(tmp_path, "m", "k2", path=tmp_path / "r")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        RunFolder.open(tmp_path, "m", "k1", path=tmp_path / "f")


def test_outputs_must_be_plain_names(tmp_path):
    run = RunFolder.open(tmp_path, "m", "k")
    with pytest.raises(UsageError, match="plain file name"):
        run.step("x", "kx", lambda out: out.path("../escape.txt"))


def test_keys_change_with_what_decides_the_result():
    base = step_key("apply", {"pass": "resize_nearest"}, {"model": "d1"}, "0.1")
    assert base == step_key("apply", {"pass": "resize_nearest"}, {"model": "d1"}, "0.1")
    assert base != step_key("apply", {"pass": "resize_nearest"}, {"model": "d2"}, "0.1")
    assert base != step_key("apply", {"pass": "resize_nearest"}, {"model": "d1"}, "0.2")


def test_each_step_keeps_the_time_its_work_took_and_a_reused_one_costs_nothing(tmp_path):
    import time as _time

    folder = RunFolder.open(tmp_path, "m", "k1")

    def slow(out):
        _time.sleep(0.05)
        out.path("a.txt").write_text("a")
        return {}

    folder.step("a", "key-a", slow)
    assert folder.seconds()["a"] >= 0.05
    again = RunFolder.open(tmp_path, "m", "k2")
    again.step("a", "key-a", slow)  # found done in the first folder: linked, not run
    assert again.seconds() == {"a": 0.0} and again.steps["a"].seconds >= 0.05
