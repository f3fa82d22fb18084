"""Pass options are checked on construction: a bad value is a usage error before any pass runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from surgery import PassResult
from surgery.cli.main import main
from surgery.errors import UsageError
from surgery.pass_infra import Pass, option


@dataclass(frozen=True, kw_only=True)
class Bounded(Pass):
    """A pass with bounded options (never run)."""

    name: ClassVar[str] = "bounded"
    size: int = option(8, help="a size", minimum=1, maximum=64)
    ratio: float = option(0.5, help="a ratio", minimum=0.0, maximum=1.0)
    shift: int = option(0, help="any int64")
    names: tuple[str, ...] = option((), help="names")

    def call(self, model):  # pragma: no cover - never run
        return PassResult(model, changed=False)


@pytest.mark.parametrize(("pairs", "message"), [
    ({"size": "0"}, "option size must be >= 1"),
    ({"size": "65"}, "option size must be <= 64"),
    ({"size": "99999999999999999999"}, "option size must be <= 64"),
    ({"shift": "99999999999999999999"}, "option shift must be <= 9,223,372,036,854,775,807"),
    ({"ratio": "nan"}, "option ratio must be a finite number"),
    ({"ratio": "inf"}, "option ratio must be a finite number"),
    ({"ratio": "1.5"}, "option ratio must be <= 1"),
    ({"ratio": "abc"}, "option ratio expects a number"),
    ({"names": ""}, "option names= is empty"),
    ({"names": " , "}, "option names= is empty"),
])
def test_bad_option_values_name_the_pass_option_and_value(pairs, message):
    with pytest.raises(UsageError) as info:
        Bounded.from_strings(pairs)
    assert message in str(info.value) and "pass bounded" in str(info.value)


def test_bounds_hold_for_the_python_api_too():
    with pytest.raises(UsageError, match="option size must be >= 1"):
        Bounded(size=0)
    assert Bounded(size=64, ratio=1.0, names=("a",)).size == 64


@pytest.mark.parametrize(("spec", "message"), [
    (["fix_shapes", "batch=99999999999999999999"], "batch must be <= 2,147,483,647"),
    (["simplify", "tensor_size_threshold=abc"], "tensor_size_threshold expects a size such as 500MB"),
    (["simplify", "tensor_size_threshold=3GB"], "must be under 2GB"),
    (["resize_nearest", "nodes="], "nodes= is empty"),
])
def test_apply_refuses_them_before_running(model_path, capsys, spec, message):
    assert main(["apply", str(model_path), "--pass", *spec, "-o", str(model_path.with_name("o.onnx"))]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not model_path.with_name("o.onnx").exists()
