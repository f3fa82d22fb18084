"""The zoo networks have upstream's parameter counts, key names and shapes; recipes are plain data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from surgery import models as zoo
from surgery.errors import UnknownNameError, UsageError

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")
from zoo_helpers import build, randomize  # noqa: E402

# measured on the upstream code (shared/reference/models.md)
PARAMS = {"icnet": 26_249_376, "unetpp": 9_163_329, "cspresnext50": 20_569_896, "deeplabv3": 68_113_030,
          "hrnet_w18": 21_299_004}
KEYS = {"icnet": (375, 62), "unetpp": (212, 30), "cspresnext50": (332, 55), "deeplabv3": (376, 62),
        "hrnet_w18": (1956, 325)}
UPSTREAM_KEYS = [
    ("icnet", "pretrained.conv1.0.weight", (64, 3, 3, 3)),
    ("icnet", "pretrained.conv1.6.weight", (128, 64, 3, 3)),
    ("icnet", "pretrained.bn1.running_var", (128,)),
    ("icnet", "pretrained.layer1.0.conv1.weight", (64, 128, 1, 1)),
    ("icnet", "pretrained.layer4.2.conv2.weight", (512, 512, 3, 3)),
    ("icnet", "conv_sub1.2.conv.weight", (64, 32, 3, 3)),
    ("icnet", "head.cff_24.conv_low.0.weight", (128, 2048, 3, 3)),
    ("icnet", "head.cff_12.conv_high.0.weight", (128, 64, 1, 1)),
    ("icnet", "head.conv_cls.weight", (19, 128, 1, 1)),
    ("unetpp", "conv0_0.conv1.weight", (32, 3, 3, 3)),
    ("unetpp", "conv0_4.conv1.weight", (32, 192, 3, 3)),
    ("unetpp", "conv1_3.conv1.bias", (64,)),
    ("unetpp", "final.weight", (1, 32, 1, 1)),
    ("cspresnext50", "stem.conv1.conv.weight", (64, 3, 7, 7)),
    ("cspresnext50", "stages.1.conv_down.conv.weight", (256, 8, 3, 3)),
    ("cspresnext50", "stages.0.blocks.0.conv2.conv.weight", (128, 4, 3, 3)),
    ("cspresnext50", "stages.3.conv_transition.bn.running_mean", (2048,)),
    ("cspresnext50", "head.fc.weight", (1000, 2048)),
    ("deeplabv3", "backbone.stem.0.weight", (32, 3, 3, 3)),
    ("deeplabv3", "backbone.stem.7.weight", (64,)),
    ("deeplabv3", "backbone.layer1.0.conv1.weight", (64, 64, 1, 1)),
    ("deeplabv3", "decode_head.image_pool.1.conv.weight", (512, 2048, 1, 1)),
    ("deeplabv3", "decode_head.aspp_modules.1.conv.weight", (512, 2048, 3, 3)),
    ("deeplabv3", "decode_head.bottleneck.conv.weight", (512, 2560, 3, 3)),
    ("deeplabv3", "decode_head.conv_seg.bias", (19,)),
    ("deeplabv3", "auxiliary_head.convs.0.conv.weight", (256, 1024, 3, 3)),
    ("deeplabv3", "auxiliary_head.conv_seg.bias", (19,)),
    ("hrnet_w18", "transition1.0.0.weight", (18, 256, 3, 3)),
    ("hrnet_w18", "transition1.1.0.0.weight", (36, 256, 3, 3)),
    ("hrnet_w18", "transition2.2.0.0.weight", (72, 36, 3, 3)),
    ("hrnet_w18", "transition3.3.0.0.weight", (144, 72, 3, 3)),
    ("hrnet_w18", "stage4.2.fuse_layers.3.0.2.0.weight", (144, 18, 3, 3)),
    ("hrnet_w18", "stage4.2.fuse_layers.3.0.1.1.running_var", (18,)),
    ("hrnet_w18", "stage2.0.fuse_layers.0.1.0.weight", (18, 36, 1, 1)),
    ("hrnet_w18", "incre_modules.3.0.downsample.0.weight", (1024, 144, 1, 1)),
    ("hrnet_w18", "downsamp_modules.2.0.bias", (1024,)),
    ("hrnet_w18", "final_layer.0.bias", (2048,)),
    ("hrnet_w18", "classifier.weight", (1000, 2048)),
]
ABSENT_KEYS = [
    ("icnet", "pretrained.fc."), ("icnet", "ppm."), ("cspresnext50", "stages.0.conv_down."),
    ("hrnet_w18", "transition2.0."), ("hrnet_w18", "transition2.1."), ("hrnet_w18", "transition3.2."),
    ("hrnet_w18", "stage2.0.fuse_layers.0.0."), ("unetpp", "final1."),
]


@pytest.fixture(scope="module")
def state_dicts():
    return {name: build(name).state_dict() for name in PARAMS}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count_matches_upstream_and_recipe(name):
    model = build(name)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMS[name] == zoo.get_recipe(name).params


@pytest.mark.parametrize("name", list(KEYS))
def test_state_dict_key_counts(name, state_dicts):
    keys = list(state_dicts[name])
    assert (len(keys), sum(k.endswith("num_batches_tracked") for k in keys)) == KEYS[name]


@pytest.mark.parametrize(("name", "key", "shape"), UPSTREAM_KEYS, ids=[f"{n}:{k}" for n, k, _ in UPSTREAM_KEYS])
def test_upstream_key_names_and_shapes(name, key, shape, state_dicts):
    assert key in state_dicts[name]
    assert tuple(state_dicts[name][key].shape) == shape


@pytest.mark.parametrize(("name", "prefix"), ABSENT_KEYS)
def test_keys_upstream_does_not_have(name, prefix, state_dicts):
    assert not [k for k in state_dicts[name] if k.startswith(prefix)]


def test_deeplab_aux_head_is_kept_only_for_loading():
    model = build("deeplabv3")
    without_aux = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("auxiliary_head."))
    assert without_aux == 65_748_339


def test_every_recipe_names_its_inputs_outputs_and_guide():
    assert list(zoo.RECIPES) == ["icnet", "unetpp", "cspresnext50", "deeplabv3", "hrnet_w18"]
    for name, recipe in zoo.RECIPES.items():
        assert recipe.name == name and recipe.module == f"surgery.models.{name}"
        assert recipe.inputs[0].shape[0] == "N" and recipe.outputs
        assert recipe.guide == f"{name}.md" and "@" in recipe.upstream
        assert recipe.atc["framework"] == 5 and recipe.atc["input_format"] == "NCHW"
        assert recipe.atc["input_shape"].startswith(f"{recipe.inputs[0].name}:{{batch}},")
        assert set(recipe.published.throughput) >= {"310"}
        assert all(b in recipe.batches for b in recipe.published.throughput["310"])
    icnet = zoo.get_recipe("icnet")
    assert len(icnet.outputs) == 4
    assert [(s.name, s.options) for s in icnet.default_passes] == [("prune_outputs", {"outputs": "logits"})]
    assert icnet.published.throughput["T4"][16] == 1177.7175
    assert zoo.get_recipe("unetpp").published.throughput["310P"][4] == 2495.595994
    assert zoo.get_recipe("unetpp").default_passes[0].name == "resize_nearest"
    assert zoo.get_recipe("deeplabv3").published.throughput == {"310": {1: 2.789}, "310P": {1: 5.3444},
                                                                 "T4": {1: 5.804}}
    assert zoo.get_recipe("hrnet_w18").input_shapes(16) == {"image": (16, 3, 224, 224)}


def test_unknown_model_suggests_a_close_name():
    with pytest.raises(UnknownNameError) as info:
        zoo.get_recipe("hrnet18")
    assert "did you mean 'hrnet_w18'" in str(info.value) and "\n" not in str(info.value)


def test_variants_are_validated():
    recipe = zoo.get_recipe("icnet")
    assert zoo.resolve_variants(recipe) == {"ppm": "exact"}
    assert zoo.resolve_variants(recipe, {"ppm": "ascend"}) == {"ppm": "ascend"}
    with pytest.raises(UnknownNameError, match="did you mean 'ppm'"):
        zoo.resolve_variants(recipe, {"pp": "ascend"})
    with pytest.raises(UsageError, match="not one of exact, ascend"):
        zoo.resolve_variants(recipe, {"ppm": "approx"})
    with pytest.raises(UsageError, match="has no variants"):
        zoo.load_network("hrnet_w18", {"head": "argmax"})


def test_load_network_returns_eval_mode_with_variant():
    net = zoo.load_network("deeplabv3", {"head": "argmax"})
    assert not net.training and net.head_mode == "argmax"


def test_zoo_imports_without_torch_and_says_how_to_install_it():
    script = (
        "import sys; sys.modules['torch'] = None\n"  # makes `import torch` fail
        "import surgery.models as zoo\n"
        "assert len(zoo.RECIPES) == 5 and zoo.get_recipe('icnet').params == 26249376\n"
        "from surgery.errors import UsageError\n"
        "try:\n    zoo.load_network('unetpp')\nexcept UsageError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install torch==2.13.0" in out.stdout and out.stdout.count("\n") == 1


def test_recipes_module_does_not_import_torch():
    script = "import sys, surgery.models\nassert 'torch' not in sys.modules, 'torch imported'\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# --- ICNet pyramid pooling -------------------------------------------------------------------

F = torch.nn.functional


@pytest.mark.parametrize("size", [(32, 64), (8, 16), (4, 8), (7, 13), (6, 12)])
def test_ppm_exact_equals_adaptive_avg_pool(size):
    from surgery.models.icnet import _adaptive_mean_exact

    x = torch.randn(2, 5, *size, generator=torch.Generator().manual_seed(0))
    for bins in (1, 2, 3, 6):
        got, want = _adaptive_mean_exact(x, bins), F.adaptive_avg_pool2d(x, bins)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-6), (size, bins)


def test_ppm_ascend_is_the_guide_kernel_and_exact_only_for_bins_1_and_2():
    from surgery.models.icnet import _adaptive_mean_ascend

    # the 1/32 feature map of a 1024×2048 input
    x = torch.randn(1, 8, 32, 64, generator=torch.Generator().manual_seed(0))
    for bins in (1, 2):
        assert torch.allclose(_adaptive_mean_ascend(x, bins), F.adaptive_avg_pool2d(x, bins), atol=1e-6)
    # models.md: bin 3 → kernel (12,22) stride (10,21); bin 6 → kernel (7,14) stride (5,10)
    assert torch.equal(_adaptive_mean_ascend(x, 3), F.avg_pool2d(x, (12, 22), (10, 21)))
    assert torch.equal(_adaptive_mean_ascend(x, 6), F.avg_pool2d(x, (7, 14), (5, 10)))
    for bins in (3, 6):
        assert (_adaptive_mean_ascend(x, bins) - F.adaptive_avg_pool2d(x, bins)).abs().max() > 1e-3


def test_icnet_variants_share_weights_but_not_outputs():
    exact = randomize(build("icnet"))
    ascend = build("icnet", {"ppm": "ascend"})
    ascend.load_state_dict(exact.state_dict())
    x = torch.randn(1, 3, 256, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = exact(x), ascend(x)
    assert len(a) == len(b) == 4
    assert [tuple(t.shape) for t in a] == [(1, 19, 256, 512), (1, 19, 64, 128), (1, 19, 32, 64), (1, 19, 16, 32)]
    assert (a[0] - b[0]).abs().max() > 1e-3
