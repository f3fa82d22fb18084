from __future__ import annotations

import dataclasses

import pytest
from surgery.passes import PASSES, PruneOutputs, ResizeNearest, get_pass, make_pass

from surgery.errors import UnknownNameError, UsageError


def test_registry_names_match_classes():
    for name, cls in PASSES.items():
        assert cls.name == name
        assert cls.summary() and not cls.summary().endswith(":")


def test_every_pass_declares_typed_options_with_help():
    for cls in PASSES.values():
        for opt in cls.options():
            assert opt.help, f"{cls.name}.{opt.name} has no help"


def test_passes_are_immutable():
    p = ResizeNearest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.preset = "keep"


def test_from_strings_parses_types_and_colons():
    p = make_pass("prune_outputs", {"outputs": "Resize_317:0,aux", "names": "main,probs"})
    assert p == PruneOutputs(outputs=("Resize_317:0", "aux"), names=("main", "probs"))
    p = make_pass("simplify", {"skip_fuse_bn": "true", "skipped_optimizers": "a,b"})
    assert p.skip_fuse_bn is True and p.skipped_optimizers == ("a", "b")
    p = make_pass("resize_nearest", {"nearest-mode": "floor"})
    assert p.nearest_mode == "floor"


def test_unknown_pass_and_option_suggest():
    with pytest.raises(UnknownNameError, match="unknown pass 'resize_neares'; did you mean 'resize_nearest'"):
        get_pass("resize_neares")
    with pytest.raises(UnknownNameError, match="did you mean 'outputs'"):
        make_pass("prune_outputs", {"output": "0"})


def test_bad_values():
    with pytest.raises(UsageError, match="expects true/false"):
        make_pass("simplify", {"skip_fuse_bn": "maybe"})
    with pytest.raises(UsageError, match="is not one of torch, keep"):
        make_pass("resize_nearest", {"preset": "tf"})
    with pytest.raises(UsageError, match="needs option outputs"):
        make_pass("prune_outputs", {})


def test_option_values_are_json_ready():
    assert PruneOutputs(outputs=("0",)).option_values() == {"outputs": ["0"], "names": []}
