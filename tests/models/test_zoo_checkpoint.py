"""Checkpoint loading: weights only, strict, wrappers unwrapped, every mismatch named on one line."""

from __future__ import annotations

import re

import pytest

from surgery.errors import ModelLoadError

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")
from surgery.models._checkpoint import load_checkpoint  # noqa: E402
from zoo_helpers import build  # noqa: E402


class Pickled:
    """A custom class: torch.load(weights_only=True) must refuse to rebuild it."""

    def __init__(self):
        self.weights = torch.zeros(2)


def _equal_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_plain_state_dict_loads_strictly(unetpp_checkpoint):
    source, path = unetpp_checkpoint
    model = build("unetpp")
    report = load_checkpoint(model, path)
    assert report.loaded == 212 and not report.missing and not report.unexpected and not report.notices
    assert len(report.digest) == 64
    assert _equal_weights(model, source)


def test_module_prefix_and_mmseg_wrapper_are_unwrapped(unetpp_checkpoint, tmp_path):
    source, _ = unetpp_checkpoint
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
               "meta": {"CLASSES": ("road", "sidewalk"), "PALETTE": [[128, 64, 128], [244, 35, 232]]}}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    model = build("unetpp")
    report = load_checkpoint(model, path)
    assert _equal_weights(model, source)
    assert any("'state_dict'" in n and "meta" in n for n in report.notices)
    assert any("module." in n for n in report.notices)


def test_model_wrapper_and_missing_num_batches_tracked(unetpp_checkpoint, tmp_path):
    source, _ = unetpp_checkpoint
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "model.pth"
    torch.save({"model": state, "epoch": 3}, path)
    model = build("unetpp")
    report = load_checkpoint(model, path)
    assert report.loaded == 212 - 30 and not report.missing
    assert torch.equal(model.state_dict()["final.weight"], source.state_dict()["final.weight"])


def test_icnet_checkpoint_with_backbone_fc_loads_with_a_notice(tmp_path):
    from surgery.models.icnet import CHECKPOINT_DROP

    source = build("icnet")
    state = dict(source.state_dict())
    state["pretrained.fc.weight"] = torch.zeros(1000, 2048)
    state["pretrained.fc.bias"] = torch.zeros(1000)
    path = tmp_path / "icnet.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match=re.escape("2 unexpected keys: pretrained.fc.weight, pretrained.fc.bias")):
        load_checkpoint(build("icnet"), path)  # without the drop list it is a mismatch
    model = build("icnet")
    report = load_checkpoint(model, path, drop=CHECKPOINT_DROP)
    assert report.dropped == ["pretrained.fc.weight", "pretrained.fc.bias"]
    assert any("pretrained.fc.weight" in n for n in report.notices)
    assert _equal_weights(model, source)


def test_missing_and_unexpected_keys_are_named(unetpp_checkpoint, tmp_path):
    source, _ = unetpp_checkpoint
    state = dict(source.state_dict())
    del state["final.bias"]
    state["final2.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(build("unetpp"), path)
    text = _one_line(info.value)
    assert "1 missing keys: final.bias" in text and "1 unexpected keys: final2.weight" in text
    report = load_checkpoint(build("unetpp"), path, strict=False)
    assert report.missing == ["final.bias"] and report.unexpected == ["final2.weight"]
    assert len(report.notices) == 2


def test_long_key_lists_are_truncated(unetpp_checkpoint, tmp_path):
    source, _ = unetpp_checkpoint
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("conv0_4.")}
    path = tmp_path / "short.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(build("unetpp"), path)
    text = _one_line(info.value)
    assert "12 missing keys: conv0_4.conv1.weight, conv0_4.conv1.bias" in text and "and 8 more" in text


def test_wrong_shape_names_the_key_and_both_shapes(unetpp_checkpoint, tmp_path):
    source, _ = unetpp_checkpoint
    state = dict(source.state_dict())
    state["conv0_0.conv1.weight"] = torch.zeros(32, 1, 3, 3)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(build("unetpp"), path, strict=False)
    text = _one_line(info.value)
    assert "conv0_0.conv1.weight" in text and "[32, 1, 3, 3]" in text and "[32, 3, 3, 3]" in text


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        load_checkpoint(build("unetpp"), tmp_path / "nope.pth")


def test_pickle_that_weights_only_refuses_is_one_line(tmp_path):
    path = tmp_path / "object.pth"
    torch.save(Pickled(), path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(build("unetpp"), path)
    text = _one_line(info.value)
    assert "weights_only=True" in text and "Pickled" in text


@pytest.mark.parametrize(("content", "message"), [
    (b"this is not a torch file", "cannot read checkpoint"),
    (None, "holds no state_dict"),
    ({"weights": [1, 2, 3]}, "not named tensors"),
])
def test_files_that_are_not_state_dicts(tmp_path, content, message):
    path = tmp_path / "odd.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content if content is not None else [torch.zeros(1)], path)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_checkpoint(build("unetpp"), path)
    _one_line(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_name(unetpp_checkpoint, tmp_path, bad):
    source, _ = unetpp_checkpoint
    state = dict(source.state_dict())
    state["final.weight"] = torch.full_like(state["final.weight"], bad)
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(build("unetpp"), path)
    text = _one_line(info.value)
    assert "NaN or infinite" in text and "final.weight" in text
