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
