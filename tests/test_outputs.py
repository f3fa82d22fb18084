from __future__ import annotations

import errno
import json
import os
import tempfile

import pytest

import surgery.outputs as outputs
from surgery.errors import UsageError
from surgery.outputs import Outputs, check_named_record, record_path


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"model")
    return path


def plan_with(model) -> Outputs:
    plan = Outputs()
    plan.input(model, "the input model")
    return plan


def test_an_output_that_is_an_input_is_refused_however_it_is_spelled(tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink(model, tmp_path / "link.onnx")
    os.link(model, tmp_path / "hard.onnx")
    for spelling in ("m.onnx", "./m.onnx", str(model), "sub/../m.onnx", "link.onnx", "hard.onnx"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UsageError, match="refusing to overwrite the input model"):
            plan_with(model).file(spelling, "the run record", flag="--record")


def test_two_outputs_that_are_one_file_are_refused(tmp_path, model):
    plan = plan_with(model)
    plan.model(tmp_path / "o.onnx", flag="-o")
    with pytest.raises(UsageError, match="are the same file: the run record and the output model"):
        plan.file(tmp_path / "o.onnx", "the run record", flag="--record")
    with pytest.raises(UsageError, match="the external data of the output model"):
        plan.file(tmp_path / "o.onnx.data", "the run record", flag="--record")


def test_the_input_may_be_replaced_only_when_allowed(tmp_path, model):
    with pytest.raises(UsageError, match=r"--overwrite allows it"):
        plan_with(model).model(model, flag="-o")
    plan = Outputs()
    plan.input(model, "the input model", replaceable=True)
    assert plan.model(model, flag="-o") == model


def test_the_output_data_file_may_not_be_the_inputs_data(tmp_path, model):
    plan = plan_with(model)
    plan.input(tmp_path / "o.onnx.data", "the input model's external data")
    with pytest.raises(UsageError, match="refusing to overwrite the input model's external data"):
        plan.model(tmp_path / "o.onnx", flag="-o")


def test_folders_and_files_in_the_wrong_place(tmp_path, model):
    (tmp_path / "dir").mkdir()
    with pytest.raises(UsageError, match=r"-o .*dir is a folder; the output model is a file"):
        plan_with(model).model(tmp_path / "dir", flag="-o")
    with pytest.raises(UsageError, match=r"--snapshot .*m\.onnx is a file; the snapshot folder is a folder"):
        plan_with(model).folder(model, "the snapshot folder", flag="--snapshot")
    with pytest.raises(UsageError, match="does not exist"):
        plan_with(model).file(tmp_path / "missing" / "r.json", "the run record", flag="--record")
    with pytest.raises(UsageError, match="not a regular file"):
        plan_with(model).file("/dev/null", "the run record", flag="--record")
    with pytest.raises(UsageError, match="NUL byte"):
        plan_with(model).file("a\x00b.json", "the run record", flag="--record")
    # a workdir may be created, below any existing folder
    assert plan_with(model).file(tmp_path / "new" / "deeper" / "r.json", "the run record", create_folder=True)


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, model, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(UsageError, match=r"is not writable \(Read-only file system\)") as info:
        plan_with(model).model(tmp_path / "o.onnx", flag="-o")
    assert "\n" not in str(info.value)


def test_a_full_disk_is_refused_before_any_work(tmp_path, model, monkeypatch):
    monkeypatch.setattr(outputs, "free_bytes", lambda folder: 4096)
    with pytest.raises(UsageError, match="not enough free space for -o"):
        plan_with(model).model(tmp_path / "o.onnx", flag="-o", size=10**9)


def _record(where, **input_model):
    where.write_text(json.dumps({"schema": "surgery.record", "input_model": input_model}))


def test_default_record_names_move_aside_for_another_models_record(tmp_path):
    default = tmp_path / "unetpp.ort-cpu.bench.json"
    assert record_path(default, model={"zoo": "unetpp"}) == (default, None)
    _record(default, zoo="unetpp", path="/cache/unetpp.onnx")
    assert record_path(default, model={"zoo": "unetpp"}) == (default, None)  # a rerun replaces its own record
    path, note = record_path(default, model={"path": str(tmp_path / "unetpp.onnx")})
    assert path == tmp_path / "unetpp.ort-cpu.bench-2.json"
    assert "holds another model's record" in note and path.name in note
    assert record_path(default, model={"path": "x.onnx"}, overwrite=True) == (default, None)
    _record(path, path=str(tmp_path / "unetpp.onnx"))
    assert record_path(default, model={"path": str(tmp_path / "unetpp.onnx")})[0] == path  # its own, again


def test_a_file_that_is_not_a_record_is_never_replaced(tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text("my notes")
    path, note = record_path(notes, model=None, overwrite=True)
    assert path == tmp_path / "notes-2.json" and "not a surgery record" in note
    with pytest.raises(UsageError, match="exists and is not a surgery record"):
        check_named_record(notes)
    _record(tmp_path / "old.json")
    check_named_record(tmp_path / "old.json")  # a named record may replace a record


def test_records_through_the_plan(tmp_path, model):
    plan = plan_with(model)
    with pytest.raises(UsageError, match="refusing to overwrite the input model"):
        plan.record(str(model), tmp_path / "d.json")
    path, note = plan_with(model).record(None, tmp_path / "d.json", model={"digest": "abc"})
    assert path == tmp_path / "d.json" and note is None
