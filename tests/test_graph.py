from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from graph_builders import two_heads

from surgery.errors import ModelLoadError, ModelSaveError
from surgery.graph import (
    GraphIndex,
    default_output_path,
    load_model_file,
    model_digest,
    save_model,
    summarize,
)


def test_load_reports_digest_and_size(model_path):
    loaded = load_model_file(model_path)
    assert loaded.nbytes == model_path.stat().st_size
    assert len(loaded.digest) == 64
    assert [n.op_type for n in loaded.model.graph.node][:2] == ["Conv", "Relu"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is plain text\n", "is not an ONNX model"),
        (b"", "is not an ONNX model"),
    ],
)
def test_load_rejects_non_onnx(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model_file(path)
    assert "\n" not in str(info.value)


def test_load_rejects_truncated_model(tmp_path, model_path):
    data = model_path.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        load_model_file(path)


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model not found"):
        load_model_file(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_model_file(tmp_path)


def test_external_data_round_trip(tmp_path):
    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.arange(4096, dtype=np.float32), "big"))
    path = tmp_path / "ext.onnx"
    saved = save_model(model, path, external_data=True)
    assert (tmp_path / "ext.onnx.data").is_file()
    loaded = load_model_file(path)
    w = {t.name: t for t in loaded.model.graph.initializer}["big"]
    expected = {t.name: t for t in model.graph.initializer}["big"]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(w), onnx.numpy_helper.to_array(expected))
    assert saved.digest == loaded.digest


def test_external_data_outside_folder_is_refused(tmp_path):
    model = two_heads()
    sub = tmp_path / "sub"
    sub.mkdir()
    onnx.save_model(model, sub / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    reloaded = onnx.load(sub / "m.onnx", load_external_data=False)
    for t in reloaded.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../../etc/passwd"
    onnx.save(reloaded, sub / "evil.onnx")
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load_model_file(sub / "evil.onnx")


def test_external_data_missing_file(tmp_path):
    model = two_heads()
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    os.unlink(tmp_path / "m.data")
    with pytest.raises(ModelLoadError, match="external data file missing"):
        load_model_file(tmp_path / "m.onnx")


def test_save_is_atomic_and_protects_input(tmp_path, model_path):
    model = load_model_file(model_path).model
    with pytest.raises(ModelSaveError, match="refusing to overwrite"):
        save_model(model, model_path, protect=model_path)
    with pytest.raises(ModelSaveError, match="output folder does not exist"):
        save_model(model, tmp_path / "missing" / "out.onnx")
    out = save_model(model, tmp_path / "out.onnx")
    assert out.path.read_bytes() == model.SerializeToString()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_digest_is_content_based():
    a, b = two_heads(), two_heads()
    assert model_digest(a) == model_digest(b)
    b.graph.node[0].name = "renamed"
    assert model_digest(a) != model_digest(b)


def test_summary_counts():
    s = summarize(two_heads())
    assert s.nodes == 5
    assert s.op_counts == {"Conv": 1, "Neg": 1, "Relu": 1, "Resize": 1, "Sigmoid": 1}
    assert s.params == 4 * 3 * 3 * 3 + 0 + 4 + 3
    assert s.param_bytes == s.params * 4
    assert s.inputs == [{"name": "x", "dtype": "float", "shape": ["N", 3, 8, 8]}]
    assert s.opset == {"ai.onnx": 11}


def test_index_live_nodes():
    model = two_heads()
    index = GraphIndex(model.graph)
    assert index.live_nodes(["aux"]) == [0, 1, 3]
    assert index.live_nodes(["dead"]) == [0, 4]


def test_default_output_path(tmp_path):
    assert default_output_path(tmp_path / "a.onnx").name == "a.surgery.onnx"


def test_large_models_switch_to_external_data(tmp_path, monkeypatch):
    import surgery.graph as graph

    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(2048, np.float32), "big"))
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 4096)  # stands in for protobuf's 2 GB limit
    saved = graph.save_model(model, tmp_path / "large.onnx")
    assert (tmp_path / "large.onnx.data").is_file()
    assert saved.nbytes < 4096
    assert load_model_file(tmp_path / "large.onnx").digest == saved.digest


def test_size_and_digest_of_a_large_model_never_need_its_serialisation(monkeypatch):
    import surgery.graph as graph
    from surgery.graph import is_large, model_nbytes

    small, changed = two_heads(), two_heads()
    assert model_nbytes(small) == small.ByteSize() and not is_large(small)
    inline_digest = model_digest(small)
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 256)  # stands in for protobuf's 2 GB limit
    assert is_large(small)
    digest = model_digest(small)
    assert digest.startswith("large:") and digest != inline_digest
    assert model_digest(small) == digest and model_digest(two_heads()) == digest
    w = onnx.numpy_helper.to_array(changed.graph.initializer[0]).copy()
    w.flat[0] += 1
    changed.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, "w"))
    assert model_digest(changed) != digest  # the weights are content too


def test_names_that_are_not_utf8_are_refused(tmp_path):
    data = two_heads().SerializeToString().replace(b"Resize_317", b"Resize\xff317")
    (tmp_path / "latin.onnx").write_bytes(data)
    with pytest.raises(ModelLoadError, match="not valid UTF-8") as info:
        load_model_file(tmp_path / "latin.onnx")
    assert "\n" not in str(info.value)


def test_save_keeps_the_model_and_writes_one_data_file(tmp_path, monkeypatch):
    import surgery.graph as graph

    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.arange(4096, dtype=np.float32), "big"))
    before = model.SerializeToString()
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 4096)
    for _ in range(2):
        saved = graph.save_model(model, tmp_path / "large.onnx")
    assert model.SerializeToString() == before  # onnx.save_model would have stripped the weights from it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.onnx", "large.onnx.data"]
    assert (tmp_path / "large.onnx.data").stat().st_size == 4096 * 4
    assert saved.data_files == (tmp_path / "large.onnx.data",) and saved.data_bytes == 4096 * 4


def test_save_failures_are_one_line_errors(tmp_path, monkeypatch):
    import errno
    import tempfile

    with pytest.raises(ModelSaveError, match="is a folder"):
        save_model(two_heads(), tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(ModelSaveError, match="No space left on device") as info:
        save_model(two_heads(), tmp_path / "out.onnx")
    assert "\n" not in str(info.value) and not (tmp_path / "out.onnx").exists()


def test_runtime_source_hands_a_large_model_over_as_a_file(tmp_path, monkeypatch):
    import surgery.graph as graph

    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(2048, np.float32), "big"))
    assert isinstance(graph.runtime_source(model, tmp_path), bytes)
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 4096)
    source = graph.runtime_source(model, tmp_path)
    assert isinstance(source, str) and os.path.exists(source + ".data")
    assert len(model.graph.initializer[-1].raw_data) == 2048 * 4
