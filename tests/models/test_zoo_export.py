"""Export every zoo model and variant at small sizes: checker, names, dynamic batch, torch parity; the cache."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from surgery.errors import ModelLoadError, ModelSaveError, UnknownNameError, UsageError

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")
from surgery.models import _export, export_model, get_recipe, resolve_zoo_model  # noqa: E402
from surgery.models._export import plan_export  # noqa: E402
from zoo_helpers import build, randomize, run_onnx, run_torch  # noqa: E402

ATOL = 1e-4
# (model, variants, C×H×W traced with a symbolic batch, checkpoint layout written by the test)
CASES = [
    ("icnet", {}, (3, 128, 256), "plain"),
    ("icnet", {"ppm": "ascend"}, (3, 256, 512), "plain"),  # ascend needs a 1/32 map of at least 6×6
    ("unetpp", {}, (3, 32, 32), "plain"),
    ("unetpp", {"upsample": "nearest"}, (3, 32, 32), "plain"),
    ("cspresnext50", {}, (3, 64, 64), "model"),
    ("hrnet_w18", {}, (3, 64, 64), "module"),
    ("deeplabv3", {}, (3, 32, 64), "mmseg"),
    ("deeplabv3", {"head": "argmax"}, (3, 32, 64), "mmseg"),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One randomized network per model, saved once in the layout its CASES entry names."""
    folder = tmp_path_factory.mktemp("checkpoints")
    made: dict[str, tuple[dict, object]] = {}

    def get(name: str, layout: str):
        if name not in made:
            torch.manual_seed(0)  # conv weights come from torch's global RNG: make them the same on every run
            state = randomize(build(name)).state_dict()
            # a random class bias swamps the features and the argmax map comes out one class: no test at all
            for key in [k for k in state if k.endswith("conv_seg.bias")]:
                state[key] = torch.zeros_like(state[key])
            wrapped = {
                "plain": state,
                "model": {"model": state},
                "module": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 100},
                "mmseg": {"state_dict": state, "meta": {"CLASSES": ("road",) * 19, "PALETTE": [[0, 0, 0]] * 19}},
            }[layout]
            path = folder / f"{name}.pth"
            torch.save(wrapped, path)
            made[name] = (state, path)
        return made[name]

    return get


@pytest.mark.parametrize(("name", "variants", "chw", "layout"), CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1].values()) or 'default'}" for c in CASES])
def test_export_matches_torch(name, variants, chw, layout, checkpoints, tmp_path):
    recipe = get_recipe(name)
    state, ckpt = checkpoints(name, layout)
    input_name = recipe.inputs[0].name
    out = tmp_path / f"{name}.onnx"
    result = export_model(name, out, checkpoint=ckpt, variants=variants, input_shapes={input_name: ("N", *chw)})

    assert result.path == out and result.checkpoint_digest and result.nodes > 0
    assert not any("seeded" in n for n in result.notices)
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 11
    assert [i.name for i in model.graph.input] == [input_name]
    assert [o.name for o in model.graph.output] == list(recipe.outputs)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"

    reference = build(name, variants)
    reference.load_state_dict(state)
    # batch 2 through the dynamic axis
    x = np.random.default_rng(0).standard_normal((2, *chw)).astype(np.float32)
    got, want = run_onnx(out, {input_name: x}), run_torch(reference, x)
    assert len(got) == len(want) == len(recipe.outputs)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        if w.dtype == np.int64:  # argmax labels, batch in dimension 1 (mmseg's unsqueeze(0)); near-ties may flip
            assert g.shape == (1, 2, *chw[1:]) and g.dtype == np.int64
            assert np.mean(g != w) < 1e-3 and len(np.unique(w)) > 1
        else:
            assert np.abs(g - w).max() <= ATOL, f"{name} {variants}: max |onnx - torch| = {np.abs(g - w).max()}"
            assert np.abs(w).max() > 1e-2  # outputs that are not all ~0, so the bound means something


@pytest.fixture(scope="module")
def seeded_unetpp(tmp_path_factory):
    """UNet++ exported at 32x32 without a checkpoint (seeded and calibrated), shared by the tests below."""
    folder = tmp_path_factory.mktemp("seeded")
    return export_model("unetpp", folder / "a.onnx", input_shapes={"actual_input_1": (1, 3, 32, 32)})


def test_without_checkpoint_weights_are_seeded_and_say_so(tmp_path, seeded_unetpp):
    a = seeded_unetpp
    b = export_model("unetpp", tmp_path / "b.onnx", input_shapes={"actual_input_1": (1, 3, 32, 32)})
    c = export_model("unetpp", tmp_path / "c.onnx", input_shapes={"actual_input_1": (1, 3, 32, 32)}, seed=1)
    assert a.checkpoint_digest is None and any("accuracy figures mean nothing" in n for n in a.notices)
    weights = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(r.path)).graph.initializer}
               for r in (a, b, c)]
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(np.array_equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert a.input_shapes == {"actual_input_1": (1, 3, 32, 32)}  # numbers typed: static


def test_static_batch(tmp_path):
    result = export_model("cspresnext50", tmp_path / "c.onnx", input_shapes={"image": ("N", 3, 64, 64)}, batch=3)
    model = onnx.load(str(result.path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 3, 64, 64] and result.input_shapes == {"image": (3, 3, 64, 64)}
    (logits,) = run_onnx(result.path, {"image": np.zeros((3, 3, 64, 64), np.float32)})
    assert logits.shape == (3, 1000)


def test_batch_defaults_follow_the_recipe():
    assert plan_export("icnet").dynamic and plan_export("icnet").shapes == {"actual_input_1": (1, 3, 1024, 2048)}
    assert not plan_export("deeplabv3").dynamic  # mmseg exports batch 1
    assert plan_export("deeplabv3", batch="dynamic").exported_shapes() == {"input": ("N", 3, 1024, 2048)}
    assert plan_export("unetpp", input_shapes={"actual_input_1": ("B", 3, 64, 64)}).dynamic


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"input_shapes": {"image": (1, 3, 96, 96)}}, UnknownNameError, "unknown input of unetpp 'image'"),
    ({"input_shapes": {"actual_input_1": (1, 3, 96)}}, UsageError, "has rank 4"),
    ({"input_shapes": {"actual_input_1": (1, 3, "H", 96)}}, UsageError, "only the batch dimension"),
    ({"input_shapes": {"actual_input_1": (1, 0, 96, 96)}}, UsageError, "must be positive"),
    ({"input_shapes": {"actual_input_1": (2, 3, 96, 96)}, "batch": 4}, UsageError, "contradicts"),
    ({"batch": 0}, UsageError, "batch must be"),
    ({"batch": "static"}, UsageError, "batch must be"),
    ({"opset": 7}, UsageError, "opset must be"),
    ({"variants": {"upsample": "bicubic"}}, UsageError, "not one of bilinear, nearest"),
])
def test_bad_export_options_are_one_line_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        plan_export("unetpp", **kwargs)
    assert "\n" not in str(info.value)


def test_size_the_network_cannot_take(tmp_path):
    with pytest.raises(UsageError, match="unetpp cannot run at actual_input_1:1x3x8x8") as info:
        export_model("unetpp", tmp_path / "u.onnx", input_shapes={"actual_input_1": (1, 3, 8, 8)})
    assert "\n" not in str(info.value) and not (tmp_path / "u.onnx").exists()


def test_missing_output_folder_and_checkpoint(tmp_path):
    with pytest.raises(ModelSaveError, match="output folder does not exist"):
        export_model("unetpp", tmp_path / "no" / "u.onnx")
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        export_model("unetpp", tmp_path / "u.onnx", checkpoint=tmp_path / "missing.pth")


def test_cache_exports_once_and_keys_on_options(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(tmp_path / "cache"))
    shapes = {"actual_input_1": ("N", 3, 32, 32)}
    first = resolve_zoo_model("unetpp", input_shapes=shapes)
    assert first.is_file() and first.parent == tmp_path / "cache" and first.with_suffix(".json").is_file()
    stamp = first.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again instead of reusing the cache")

    monkeypatch.setattr(_export, "export_model", no_export)
    assert resolve_zoo_model("unetpp", input_shapes=shapes) == first
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="exported again"):  # another variant is another file
        resolve_zoo_model("unetpp", input_shapes=shapes, variants={"upsample": "nearest"})
    with pytest.raises(AssertionError, match="exported again"):  # so is another checkpoint
        ckpt = tmp_path / "w.pth"
        torch.save(build("unetpp").state_dict(), ckpt)
        resolve_zoo_model("unetpp", input_shapes=shapes, checkpoint=ckpt)


@pytest.mark.slow
def test_icnet_at_the_guide_size_matches_torch(tmp_path):
    """1024×2048: the 32×64 map where bins 3 and 6 do not divide, the case the Ascend patch approximated."""
    model = randomize(build("icnet"))
    ckpt = tmp_path / "icnet.pth"
    torch.save(model.state_dict(), ckpt)
    result = export_model("icnet", tmp_path / "icnet.onnx", checkpoint=ckpt)
    assert result.input_shapes == {"actual_input_1": ("N", 3, 1024, 2048)}
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("ReduceMean") == 3 + 3 + 6 + 6  # per-row and per-column cells of bins 3 and 6
    x = np.random.default_rng(0).standard_normal((1, 3, 1024, 2048)).astype(np.float32)
    got, want = run_onnx(result.path, {"actual_input_1": x}), run_torch(model, x)
    assert got[0].shape == (1, 19, 1024, 2048)
    for g, w in zip(got, want, strict=True):
        assert np.abs(g - w).max() <= ATOL


# -- seeded weights, calibrated -----------------------------------------------------------------------


def _image_samples(shape, count=3):
    from surgery.parity import random_samples
    from surgery.shapes import InputSpec

    return [s.feed["x"] for s in random_samples([InputSpec("x", shape)], {"x": shape}, count=count, seed=5,
                                                distributions=("image",))]


def test_seeded_unetpp_output_spreads_like_a_trained_net(seeded_unetpp):
    result = seeded_unetpp
    assert any("accuracy figures mean nothing" in n for n in result.notices)
    assert any("calibrated on 4 generated" in n for n in result.notices)
    out = np.stack([run_onnx(result.path, {"actual_input_1": x})[0] for x in _image_samples((1, 3, 32, 32))])
    # a trained UNet++'s logits span units (sigmoid 0.05..0.95); the raw seeded net gave std 0.003, one value
    assert out.std() > 0.5 and min(y.std() for y in out) > 0.3  # across the pixels of each image
    assert 0.05 < (out > 0).mean() < 0.95  # a mask with both classes, not all foreground


@pytest.mark.parametrize(("name", "variants", "shape"), [
    ("deeplabv3", {"head": "argmax"}, (1, 3, 32, 64)),
    ("icnet", {}, (1, 3, 128, 256)),
])
def test_seeded_segmenters_give_argmax_maps_of_several_classes(name, variants, shape):
    from surgery.models._calibrate import calibrate
    from surgery.models._checkpoint import seed_init

    model, _ = seed_init(lambda: build(name, variants), 0)  # what export_model does without a checkpoint
    calibrate(model, {"x": shape}, seed=0)
    x = np.concatenate(_image_samples(shape, 2))

    def classes(net):
        (out, *_) = run_torch(net.eval(), x)
        labels = out if out.dtype == np.int64 else out.argmax(1)
        return [len(np.unique(labels[..., k, :, :] if out.dtype == np.int64 else labels[k])) for k in range(2)]

    assert min(classes(model)) >= 3, classes(model)  # uncalibrated, one DeepLabV3 class won every pixel


def test_calibration_is_part_of_the_cache_key(monkeypatch):
    from surgery.models import _calibrate

    plan = plan_export("unetpp", input_shapes={"actual_input_1": (1, 3, 32, 32)})
    key = _export.cache_key(plan, None, 0, "2.13")
    monkeypatch.setattr(_export, "CALIBRATION_VERSION", _calibrate.CALIBRATION_VERSION + 1)
    assert _export.cache_key(plan, None, 0, "2.13") != key
    assert _export.cache_key(plan, "abc", 0, "2.13") == _export.cache_key(plan, "abc", 1, "2.13")  # a checkpoint
