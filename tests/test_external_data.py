from __future__ import annotations

import os
import stat

import numpy as np
import onnx
import pytest
from tensor_models import SITES, everywhere, point_at

import surgery.external_data as external
from surgery.errors import ModelLoadError
from surgery.graph import load_model_file, model_digest, save_model
from surgery.tensors import iter_tensors


def _site(model: onnx.ModelProto, fragment: str) -> onnx.TensorProto:
    return next(s.tensor for s in iter_tensors(model) if fragment in s.where)


def _write(model: onnx.ModelProto, folder, name: str = "m.onnx"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname", "sub/../../outside.bin"])
def test_references_outside_the_folder_are_refused_wherever_the_tensor_lives(tmp_path, site, location):
    (tmp_path / "outside.bin").write_bytes(bytes(4096))
    model = everywhere()
    point_at(_site(model, site), location, 0, 4)
    path = _write(model, tmp_path / "model")
    with pytest.raises(ModelLoadError, match="outside the model's folder") as info:
        load_model_file(path)
    assert site.split(" of ")[0].split(" (")[0] in str(info.value)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(bytes(4096))
    (tmp_path / "model").mkdir()
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "weights.bin")
    model = everywhere()
    point_at(_site(model, "initializer 'tw'"), "weights.bin", 0, 2048)
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load_model_file(_write(model, tmp_path / "model"))


@pytest.mark.parametrize(("offset", "length", "message"), [
    (0, 99999, "holds 2048 bytes"),
    (4000, 2048, "truncated"),
    (2100, None, "truncated"),
    ("abc", 2048, "not a byte count"),
    ("-1", 2048, "not a byte count"),
    (0, 100, "holds 2048 bytes"),
])
def test_offset_and_length_must_lie_within_the_file(tmp_path, offset, length, message):
    model = everywhere()
    point_at(_site(model, "attribute 'value' of node 'k'"), "weights.bin", offset, length)
    path = _write(model, tmp_path)
    (tmp_path / "weights.bin").write_bytes(bytes(4096))
    with pytest.raises(ModelLoadError, match=message):
        load_model_file(path)


def test_nul_bytes_and_odd_encodings_in_a_location_are_refused(tmp_path):
    model = everywhere()
    point_at(_site(model, "initializer 'w'"), "weights\x00.bin", 0, 2048)
    with pytest.raises(ModelLoadError, match="NUL byte"):
        load_model_file(_write(model, tmp_path, "nul.onnx"))
    model = everywhere()
    point_at(_site(model, "initializer 'w'"), "wéights.bin", 0, 2048)
    data = model.SerializeToString().replace("wéights".encode(), b"w\xff\xfeights")
    (tmp_path / "latin.onnx").write_bytes(data)
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        load_model_file(tmp_path / "latin.onnx")


def test_missing_files_folders_and_missing_locations(tmp_path):
    model = everywhere()
    point_at(_site(model, "sparse initializer 's' (values)"), "nope.bin", 0, 4)
    with pytest.raises(ModelLoadError, match="external data file missing"):
        load_model_file(_write(model, tmp_path, "a.onnx"))
    (tmp_path / "adir").mkdir()
    model = everywhere()
    point_at(_site(model, "sparse initializer 's' (values)"), "adir", 0, 4)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model_file(_write(model, tmp_path, "b.onnx"))
    model = everywhere()
    t = _site(model, "initializer 'w'")
    t.data_location = onnx.TensorProto.EXTERNAL
    with pytest.raises(ModelLoadError, match="has no location"):
        load_model_file(_write(model, tmp_path, "c.onnx"))


def test_save_and_load_external_data_at_every_site(tmp_path, monkeypatch):
    monkeypatch.setattr(external, "INLINE_LIMIT", 16)  # the sparse tensors are small: send them out too
    model = everywhere()
    before = model_digest(model)
    saved = save_model(model, tmp_path / "m.onnx", external_data=True)
    assert model_digest(model) == before  # the model in memory keeps its weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    on_disk = onnx.load(tmp_path / "m.onnx", load_external_data=False)
    sites = [s.where for s in iter_tensors(on_disk) if s.tensor.data_location == onnx.TensorProto.EXTERNAL]
    for site in SITES:
        assert any(site in where for where in sites), site
    loaded = load_model_file(tmp_path / "m.onnx")
    assert model_digest(loaded.model) == before
    assert loaded.digest == saved.digest and loaded.data_files == (tmp_path / "m.onnx.data",)
    size = (tmp_path / "m.onnx.data").stat().st_size
    save_model(loaded.model, tmp_path / "m.onnx", external_data=True)  # saved again over itself: never appended
    assert (tmp_path / "m.onnx.data").stat().st_size == size


def test_saved_external_data_runs_on_onnxruntime(tmp_path):
    import onnxruntime as ort

    model = everywhere()
    save_model(model, tmp_path / "m.onnx", external_data=True)
    x = np.linspace(-1, 1, 512, dtype=np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    actual = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(expected[0], actual[0])


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save_model(everywhere(), tmp_path / "m.onnx", external_data=True)
        save_model(everywhere(), tmp_path / "inline.onnx")
    finally:
        os.umask(old)
    for name in ("m.onnx", "m.onnx.data", "inline.onnx"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_references_are_checked_and_hashed_without_loading_the_weights(tmp_path):
    save_model(everywhere(), tmp_path / "m.onnx", external_data=True)
    full = load_model_file(tmp_path / "m.onnx")
    light = load_model_file(tmp_path / "m.onnx", load_external_data=False)
    assert light.digest == full.digest and light.data_files == full.data_files
    assert all(s.tensor.data_location == onnx.TensorProto.EXTERNAL for s in iter_tensors(light.model)
               if "initializer 'w'" in s.where)
    data = (tmp_path / "m.onnx.data").read_bytes()
    (tmp_path / "m.onnx.data").write_bytes(data[: len(data) // 2])  # truncated: refused even for a summary
    with pytest.raises(ModelLoadError, match="truncated"):
        load_model_file(tmp_path / "m.onnx", load_external_data=False)
