"""Each seed guide's own atc / aoe / auto_tune / trtexec commands, reproduced by our adapters and plans.

The guide lines are copied verbatim from shared/seeds/*.md. "Same options, our file
names": model, output and the ``${chip_name}`` placeholder are the only differences allowed.
"""

from __future__ import annotations

import shlex

import pytest
from surgery.tools.ascend import aoe, atc
from surgery.tools.ascend import aoe_flow as tune
from surgery.tools.ascend.targets import AtcTarget
from surgery.tools.tensorrt import trtexec

from surgery.targets import COMPILE, TUNE, ModelSpec, Request

GUIDE_ATC = {
    "icnet": 'atc --framework=5 --model=ICNet.onnx --output=ICNet_bs1 --out_nodes="Resize_317:0" --input_format=NCHW '
             '--input_shape="actual_input_1: 1,3,1024,2048" --log=debug --soc_version=${chip_name}',
    "unetpp": 'atc --framework=5 --model=./nested_unet.onnx --input_format=NCHW '
              '--input_shape="actual_input_1:16,3,96,96" --output=nested_unet_bs16 --log=debug '
              '--soc_version=Ascend${chip_name}',
    "cspresnext50": 'atc --framework=5 --model=./cspresnext.onnx --input_format=NCHW --input_shape="image:1,3,224,224" '
                    '--output=cspresnext_bs1 --log=debug --soc_version=Ascend310',
    "deeplabv3": 'atc --framework=5 --model=deeplabv3_sim_bs1.onnx --output=deeplabv3_bs1 --input_format=NCHW '
                 '--input_shape="input:1,3,1024,2048" --log=debug --soc_version=Ascend${chip_name}',
    "hrnet_w18": 'atc --framework=5 --model=./hrnet_w18.onnx --input_format=NCHW --input_shape="image:16,3,224,224" '
                 '--output=hrnet_bs16 --log=debug --soc_version=Ascend310',
}
GUIDE_AOE_ICNET = ('aoe --framework 5 --model ICNet.onnx  --job_type 2 --output ICNet_bs1-aoe  '
                   '--input_shape "actual_input_1: 1,3,1024,2048"  --log error --op_select_implmode high_performance')
GUIDE_AUTO_TUNE_ICNET = ('atc --framework=5 --model=ICNet.onnx --output=ICNet_bs1 --out_nodes="Resize_317:0" '
                         '--input_format=NCHW --input_shape="actual_input_1: 1,3,1024,2048" --log=debug '
                         '--soc_version=Ascend310  --auto_tune_mode="RL,GA"')
GUIDE_TRTEXEC_ICNET = "trtexec --onnx=ICNet.onnx --fp16 --shapes=image:1,3,1024,2048 --threads"
FILE_OPTIONS = {"model", "output", "onnx"}
# values that name things in *our* export: the guide's torch 1.8 node name vs our output name
OUR_NAMES = {"icnet": {"out_nodes": "logits"}}


def options_of(command: str | list[str]) -> dict[str, str]:
    """``--key=value`` and ``--key value`` tokens as one dict; shapes without spaces, dims with x for trtexec."""
    tokens = shlex.split(command) if isinstance(command, str) else list(command)
    out: dict[str, str] = {}
    i = 1
    while i < len(tokens):
        token = tokens[i]
        assert token.startswith("--"), token
        key, sep, value = token[2:].partition("=")
        if not sep and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value = tokens[i + 1]  # "--key value" (aoe in the ICNet guide)
            i += 1
        out[key] = value.replace(" ", "")
        i += 1
    if "shapes" in out:
        out["shapes"] = out["shapes"].replace(",", "x")
    return out


def comparable(options: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in options.items() if k not in FILE_OPTIONS and k != "soc_version"}


def guide_settings(name: str) -> dict[str, str]:
    """What a recipe's atc dict holds for this guide: every option but files, shape and soc."""
    return {k: v for k, v in comparable(options_of(GUIDE_ATC[name])).items()
            if k not in ("framework", "input_shape")}


@pytest.mark.parametrize("name", sorted(GUIDE_ATC))
def test_atc_adapter_reproduces_each_guide(name):
    guide = options_of(GUIDE_ATC[name])
    shapes = atc.parse_input_shape(guide["input_shape"])
    ours = atc.atc_options(f"{name}.onnx", f"{name}_bs1", "Ascend310P3", guide_settings(name), input_shape=shapes)
    assert comparable(options_of(ours.argv())) == comparable(guide)


def test_icnet_aoe_command():
    guide = options_of(GUIDE_AOE_ICNET)
    ours = aoe.aoe_options("icnet.onnx", 2, {"log": "error", "op_select_implmode": "high_performance"},
                           input_shape={"actual_input_1": (1, 3, 1024, 2048)}, output="icnet_bs1-aoe")
    assert comparable(options_of(ours.argv())) == comparable(guide)


def test_icnet_auto_tune_command():
    guide = options_of(GUIDE_AUTO_TUNE_ICNET)
    cfg = tune.TuneConfig(onnx="icnet.onnx", name="icnet", soc_version="Ascend310",
                          input_shapes={1: {"actual_input_1": (1, 3, 1024, 2048)}}, batches=(1,), method="auto_tune",
                          atc=guide_settings("icnet"), workdir="w")
    tuned = next(s for s in tune.build_plan(cfg).steps if s.info.build == "auto_tune")
    assert comparable(options_of(list(tuned.argv))) == comparable(guide)
    assert dict(tuned.env)["TUNE_BANK_PATH"]


def test_icnet_t4_trtexec_command():
    guide = options_of(GUIDE_TRTEXEC_ICNET)
    ours = options_of(trtexec.t4_options("icnet.onnx", {"image": (1, 3, 1024, 2048)}, threads=True).argv())
    assert comparable(ours) == comparable(guide)  # the guide's 1,3,... dims become trtexec's 1x3x...


# ---------------------------------------------------------------------------
# the zoo recipes' dry-run plans (skipped until the zoo has the model)


def _recipe(name):
    from surgery.models import RECIPES

    recipe = RECIPES.get(name)
    if recipe is None:
        pytest.skip(f"the zoo has no recipe {name!r} yet")
    return recipe


def _atc_target():
    from surgery.models import ZOO
    from surgery.passes import PASSES

    return AtcTarget(zoo=ZOO, registry=PASSES)


@pytest.mark.parametrize("name", sorted(GUIDE_ATC))
def test_zoo_compile_dry_run_reproduces_the_guide(name, tmp_path):
    _recipe(name)
    guide = options_of(GUIDE_ATC[name])
    batch = atc.parse_input_shape(guide["input_shape"]).popitem()[1][0]
    plan = _atc_target().plan(COMPILE, Request(ModelSpec(name), batches=(batch,), settings={"soc": "Ascend310P3"},
                                               workdir=str(tmp_path)))
    [step] = [s for s in plan.steps if s.requires == "atc"]
    assert comparable(options_of(list(step.argv))) == {**comparable(guide), **OUR_NAMES.get(name, {})}
    assert plan.steps[0].requires == "internal"  # the export, planned, not run (no torch needed)


def test_zoo_icnet_aoe_dry_run_reproduces_the_guide(tmp_path):
    _recipe("icnet")
    plan = _atc_target().plan(TUNE, Request(ModelSpec("icnet"), batches=(1,), settings={"method": "aoe"},
                                            workdir=str(tmp_path)))
    [aoe_step] = [s for s in plan.steps if s.info.kind == "aoe"]
    ours = comparable(options_of(list(aoe_step.argv)))
    ours.pop("out_nodes", None)  # the guide's AOE line had none; the recipe's ATC options may add it
    assert ours == comparable(options_of(GUIDE_AOE_ICNET))


def test_zoo_t4_commands(tmp_path):
    from surgery.models import ZOO
    from surgery.tools.tensorrt.target import TrtexecTarget

    from surgery.targets import BENCH

    recipe = _recipe("icnet")
    plan = TrtexecTarget(zoo=ZOO).plan(BENCH, Request(ModelSpec("icnet"), batches=(1, 4), settings={"fp16": True},
                                                      workdir=str(tmp_path)))
    name = recipe.inputs[0].name
    [_bs1, bs4] = [s for s in plan.steps if s.info.kind == "trtexec"]
    assert list(bs4.argv[:4]) == ["trtexec", f"--onnx={tmp_path / 'icnet.onnx'}", "--fp16",
                                  f"--shapes={name}:4x3x1024x2048"]
