"""The outputs every verb plans before working (surgery.cli._common): nothing a user owns is overwritten."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from surgery.cli.main import main

FAST_BENCH = ("--batch", "1", "--iterations", "3", "--warmup", "1")


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def model(tmp_path, model_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(tmp_path / "cache"))
    return model_path


def test_apply_record_naming_the_input_is_refused_and_the_input_kept(model, capsys):
    before = model.read_bytes()
    assert surgery("apply", model, "--pass", "eliminate_dead_code", "-o", "o.onnx", "--record", model,
                   "--no-verify") == 2
    one_line_error(capsys, "refusing to overwrite the input model")
    assert model.read_bytes() == before and not Path("o.onnx").exists()


def test_apply_record_equal_to_the_output_is_refused(model, capsys):
    assert surgery("apply", model, "--pass", "eliminate_dead_code", "-o", "o.onnx", "--record", "o.onnx",
                   "--no-verify") == 2
    one_line_error(capsys, "are the same file")
    assert not Path("o.onnx").exists()


@pytest.mark.parametrize(("flags", "fragments"), [
    (["--snapshot", "{model}"], ["--snapshot", "is a file; the snapshot folder is a folder"]),
    (["-o", "{tmp}"], ["is a folder; the output model is a file"]),
    (["-o", "{tmp}/missing/o.onnx"], ["does not exist"]),
    (["--snapshot", "{tmp}", "-o", "{tmp}/o.onnx"], []),  # fine: snapshots beside the input, other names
])
def test_apply_outputs_in_the_wrong_place_fail_before_any_pass(model, tmp_path, capsys, flags, fragments):
    argv = [f.format(model=model, tmp=tmp_path) for f in flags]
    code = surgery("apply", model, "--pass", "eliminate_dead_code", "--no-verify", *argv)
    if not fragments:
        assert code == 0 and (tmp_path / "01_eliminate_dead_code.onnx").is_file()
        return
    assert code == 2
    one_line_error(capsys, *fragments)


def test_a_snapshot_that_would_replace_the_input_is_refused(tmp_path, model, capsys):
    src = tmp_path / "01_eliminate_dead_code.onnx"
    src.write_bytes(model.read_bytes())
    assert surgery("apply", src, "--pass", "eliminate_dead_code", "--snapshot", tmp_path, "-o", "o.onnx") == 2
    one_line_error(capsys, "refusing to overwrite the input model")
    assert src.read_bytes() == model.read_bytes()


def test_an_unwritable_output_folder_fails_before_any_pass(tmp_path, model, capsys, monkeypatch):
    (tmp_path / "ro").mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # a read-only filesystem there (root ignores permission bits: simulate it)
        if str(kwargs.get("dir", "")).endswith("ro"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert surgery("apply", model, "--pass", "eliminate_dead_code", "-o", tmp_path / "ro" / "o.onnx") == 2
    one_line_error(capsys, "is not writable (Read-only file system)")


def test_apply_a_model_with_external_data_saves_one_data_file(tmp_path, model, capsys, monkeypatch):
    from tensor_models import everywhere

    import surgery.graph as graph

    graph.save_model(everywhere(512, sparse=False), tmp_path / "ext.onnx", external_data=True)
    before = (tmp_path / "ext.onnx.data").read_bytes()
    assert surgery("apply", tmp_path / "ext.onnx", "--pass", "eliminate_dead_code", "-o", "out.onnx") == 0
    assert (tmp_path / "ext.onnx.data").read_bytes() == before
    # above the (here lowered) serialisation limit the output goes out with external data, verified
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 4096)
    assert surgery("apply", tmp_path / "ext.onnx", "--pass", "eliminate_dead_code", "-o", "big.onnx") == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "NOT VERIFIED" not in out
    assert sorted(p.name for p in tmp_path.glob("big.*")) == ["big.json", "big.onnx", "big.onnx.data"]
    assert graph.load_model_file(tmp_path / "big.onnx").data_bytes == (tmp_path / "big.onnx.data").stat().st_size
    # the output's data file must not be the input's
    assert surgery("apply", tmp_path / "ext.onnx", "--pass", "eliminate_dead_code", "-o", "ext.onnx.data.onnx",
                   "--record", "ext.onnx.data") == 2
    one_line_error(capsys, "refusing to overwrite the input model's external data")


def test_bench_record_naming_the_input_is_refused(model, capsys):
    before = model.read_bytes()
    assert surgery("bench", model, "--record", model, *FAST_BENCH) == 2
    one_line_error(capsys, "refusing to overwrite the input model")
    assert model.read_bytes() == before


def test_bench_default_record_names_say_model_and_target_and_never_replace_another_models(tmp_path, model,
                                                                                        capsys):
    theirs = tmp_path / "m.ort-cpu.bench.json"
    theirs.write_text(json.dumps({"schema": "surgery.record", "input_model": {"path": "/elsewhere/m.onnx"}}))
    assert surgery("bench", model, *FAST_BENCH) == 0
    out = capsys.readouterr().out
    assert "holds another model's record; writing m.ort-cpu.bench-2.json" in out
    assert json.loads(theirs.read_text())["input_model"]["path"] == "/elsewhere/m.onnx"
    mine = json.loads((tmp_path / "m.ort-cpu.bench-2.json").read_text())
    assert mine["input_model"]["path"] == str(model)
    assert surgery("bench", model, *FAST_BENCH) == 0  # a rerun replaces its own record, takes no third name
    assert not (tmp_path / "m.ort-cpu.bench-3.json").exists()
    assert surgery("bench", model, "--overwrite", *FAST_BENCH) == 0
    assert json.loads(theirs.read_text())["input_model"]["path"] == str(model)


def test_tune_output_in_the_wrong_place_fails_before_the_search(tmp_path, model, capsys, monkeypatch):
    from surgery.tools.onnxruntime import OrtTarget

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran before the outputs were checked")

    monkeypatch.setattr(OrtTarget, "tune", no_search)
    assert surgery("tune", model, "-o", tmp_path, "--iterations", "2") == 2
    one_line_error(capsys, "is a folder; the output model is a file")
    assert surgery("tune", model, "--record", model, "--iterations", "2") == 2
    one_line_error(capsys, "refusing to overwrite the input model")


def test_a_deeply_nested_json_is_a_usage_error_everywhere(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for argv in (["diff", deep, deep], ["import", deep, "-o", tmp_path / "r.json"]):
        assert surgery(*argv) == 2, argv
        one_line_error(capsys)


def test_native_library_logs_are_caught_and_reduced_to_one_line(tmp_path, model, capsys):
    """A model onnxruntime rejects at run time: its coloured multi-line log must not reach the user."""
    from onnx import TensorProto, helper

    bad = helper.make_model(helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([7], np.int64), "s")]), opset_imports=[helper.make_opsetid("", 13)])
    bad.ir_version = 8
    onnx.save(bad, tmp_path / "bad.onnx")
    surgery("bench", tmp_path / "bad.onnx", *FAST_BENCH)
    err = capsys.readouterr().err
    assert "[E:onnxruntime" not in err and "\x1b[" not in err and len(err.strip().splitlines()) <= 1


@pytest.mark.parametrize(("flags", "message"), [
    (["--min-time", "nan"], "--min-time"),  # never ended
    (["--threads", "100000"], "--threads must be <="),  # never ended
    (["--batch", "1,,2"], "bad batch size ''"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--input-shapes", "x:1x3x99999999999999999999x8"], "is over 2,147,483,647"),
])
def test_bench_flags_are_checked_before_measuring(model, capsys, flags, message):
    assert surgery("bench", model, *flags) == 2
    one_line_error(capsys, message)


def _edited(model: Path, tmp_path: Path, edit) -> Path:
    m = onnx.load(model)
    edit(m)
    path = tmp_path / "edited.onnx"
    path.write_bytes(m.SerializeToString())
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", 99), "element type 99"),
    (lambda m: setattr(m.graph.input[0].type.tensor_type.shape.dim[2], "dim_value", 10**15), "GiB"),
])
def test_inputs_samples_cannot_be_made_for_are_named_not_internal_errors(tmp_path, model, capsys, edit, message):
    """Once a KeyError and a MemoryError: now the step is not verified, and says why (or a usage error)."""
    path = _edited(model, tmp_path, edit)
    code = surgery("apply", path, "--pass", "eliminate_dead_code", "-o", "o.onnx")
    out, err = capsys.readouterr()
    assert code in (0, 2) and "internal error" not in err and len(err.strip().splitlines()) <= 1
    assert message in (out + err)
    assert "NOT VERIFIED" in out if code == 0 else not Path("o.onnx").exists()


def test_bench_a_model_above_the_serialisation_limit_keeps_its_weights(tmp_path, model, capsys, monkeypatch):
    """Above 2 GB sessions load from a file; writing it once stripped the model's weights for the next batch."""
    import surgery.graph as graph

    def static_batch(m: onnx.ModelProto) -> None:
        for v in (*m.graph.input, *m.graph.output):
            v.type.tensor_type.shape.dim[0].dim_value = 1

    path = _edited(model, tmp_path, static_batch)
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 256)  # stands in for protobuf's 2 GB
    assert surgery("bench", path, "--batch", "1,2", "--iterations", "3", "--warmup", "1", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert [r["error"] for r in record["perf"]] == [None, None]
    assert record["perf"][1]["extra"]["reshaped_from"] == 1


def test_a_runaway_loop_ends_verification_with_a_message_not_a_hang(tmp_path):
    """The fuzzer's one hang: a Loop whose trip count asks for 2**31 iterations, verified on onnxruntime."""
    import os
    import subprocess
    import sys

    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Add", ["a_in", "one"], ["a_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("a_in", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("a_out", TensorProto.FLOAT, [8])],
        [onnx.numpy_helper.from_array(np.ones(8, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "go", "x"], ["y"], body=body), helper.make_node("Neg", ["y"], ["dead"])],
        "loop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])],
        [onnx.numpy_helper.from_array(np.array(2**31, np.int64), "trips"),
         onnx.numpy_helper.from_array(np.array(True), "go")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "loop.onnx")
    argv = [sys.executable, "-c", "import sys; from surgery.cli.main import main; sys.exit(main(sys.argv[1:]))",
            "apply", str(tmp_path / "loop.onnx"), "--pass", "eliminate_dead_code", "-o", str(tmp_path / "o.onnx")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SURGERY_VERIFY_TIMEOUT": "1"})
    assert "did not finish one sample in 1 s" in done.stdout + done.stderr
    assert "internal error" not in done.stderr
