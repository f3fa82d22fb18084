"""Model resolution: a path, or a zoo name exported through the zoo that the caller hands in."""

from __future__ import annotations

import json

import pytest

from surgery.errors import ModelLoadError, UsageError
from surgery.modelref import NO_ZOO, Zoo, ZooOptions, resolve_model
from surgery.recipe import Recipe
from surgery.shapes import InputSpec

RECIPE = Recipe(name="tiny", summary="a tiny test model", upstream="here@0", module="tests.none",
                inputs=(InputSpec("x", ("N", 3, 8, 8)),), outputs=("y",), params=1)


def make_zoo(tmp_path, calls):
    def export(name, **kwargs):
        calls.append((name, kwargs))
        path = tmp_path / "cache" / f"{name}.onnx"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"onnx")
        path.with_suffix(".json").write_text(json.dumps({"notices": ["seeded weights: accuracy means nothing"]}))
        return path
    return Zoo(recipes={"tiny": RECIPE}, resolve=export)


def test_a_path_is_a_path(model_path):
    ref = resolve_model(str(model_path), NO_ZOO)
    assert ref.path == model_path and ref.recipe is None and ref.label == str(model_path)


def test_a_zoo_name_exports_with_its_options_and_carries_the_notices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls: list = []
    ref = resolve_model("tiny", make_zoo(tmp_path, calls), ZooOptions(checkpoint="w.pth", variants=(("k", "v"),)))
    assert calls == [("tiny", {"checkpoint": "w.pth", "variants": {"k": "v"}})]
    assert ref.recipe is RECIPE and ref.label == "tiny"
    assert ref.notices == ["seeded weights: accuracy means nothing"]


def test_a_file_named_like_a_zoo_model_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_bytes(b"x")
    calls: list = []
    zoo = make_zoo(tmp_path, calls)
    assert not zoo.is_name("tiny")
    assert resolve_model("tiny", zoo).recipe is None and calls == []


def test_zoo_options_on_a_file_are_refused(model_path):
    with pytest.raises(UsageError, match="--checkpoint applies to zoo models only"):
        resolve_model(str(model_path), NO_ZOO, ZooOptions(checkpoint="w.pth"))


@pytest.mark.parametrize("arg, match", [
    ("tinny", "did you mean the zoo model 'tiny'"),
    ("missing.onnx", "model not found: missing.onnx$"),
    ("resnet", r"not a file, nor a zoo model: tiny"),
])
def test_unknown_models_say_what_is_known(tmp_path, monkeypatch, arg, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=match):
        resolve_model(arg, make_zoo(tmp_path, []))


def test_a_zoo_that_cannot_export_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="cannot export"):
        resolve_model("tiny", Zoo(recipes={"tiny": RECIPE}))
