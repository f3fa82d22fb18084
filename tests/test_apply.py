"""surgery.apply: settings validated in the library, the run's verdict as data, strict mode."""

from __future__ import annotations

import math

import pytest
from graph_builders import two_heads
from surgery.passes import EliminateDeadCode, FixShapes, ResizeNearest

from surgery.apply import NotVerifiedError, apply, check_settings
from surgery.errors import UsageError
from surgery.verification import RunVerification, Unverified, Verification


@pytest.mark.parametrize(("setting", "message"), [
    ({"atol": math.nan}, "--atol must be a finite number >= 0"),
    ({"atol": -1}, "--atol must be a finite number >= 0"),
    ({"rtol": math.inf}, "--rtol must be a finite number >= 0"),
    ({"samples": -1}, "--samples must be >= 1"),
    ({"samples": 0}, "--samples must be >= 1"),
    ({"seed": -1}, "--seed must be >= 0"),
    ({"input_shapes": {"x": (0, 3, 16, 16)}}, "--input-shapes x:0x3x16x16 must be >= 1"),
    ({"input_shapes": {"x": (1, 3, 2**40, 16)}}, "--input-shapes x:1x3x1099511627776x16 must be <="),
    ({"verify_batches": (2, 0)}, "--verify-batches must be >= 1"),
    ({"verify_batches": (2, 2)}, "--verify-batches names a batch size twice"),
    ({"distributions": ("cauchy",)}, "sample distribution must be one of normal, uniform, image"),
])
def test_bad_settings_are_one_line_usage_errors_in_the_library_too(setting, message):
    with pytest.raises(UsageError, match=message) as info:
        apply(two_heads(), [EliminateDeadCode()], **setting)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=message):
        check_settings(**setting)


def test_inputs_over_the_memory_limit_are_a_usage_error(monkeypatch):
    monkeypatch.setenv("SURGERY_MAX_INPUT_BYTES", str(10_000))
    with pytest.raises(UsageError, match=r"the verification samples would take .* over the .* limit"):
        apply(two_heads(), [EliminateDeadCode()], input_shapes={"x": (64, 3, 8, 8)})


def test_given_shapes_size_dynamic_dims_only():
    with pytest.raises(UsageError, match=r"input 'x' is Nx3x8x8; --input-shapes gives 1x3x64x64 \(it sizes dynamic"):
        apply(two_heads(), [EliminateDeadCode()], input_shapes={"x": (1, 3, 64, 64)})
    assert apply(two_heads(), [EliminateDeadCode()], input_shapes={"x": (2, 3, 8, 8)}).verified


def test_the_verdict_is_data_that_names_each_unverified_step():
    v = Verification(compared=True)
    assert v.status == "verified"
    v.unverified("the model before the pass cannot take x:1x3x8x8")
    assert v.status == "unverified" and Verification.from_dict(v.to_dict()).reasons == v.reasons
    run = RunVerification(unverified=[Unverified("fix_shapes", 0, ("the model before the pass cannot take "
                                                                    "x:1x3x8x8",))])
    assert not run.verified
    assert run.describe() == "NOT VERIFIED: fix_shapes (the model before the pass cannot take x:1x3x8x8)"
    assert run.to_dict()["unverified"] == [{"step": "fix_shapes", "index": 0,
                                            "reasons": ["the model before the pass cannot take x:1x3x8x8"]}]


def test_verified_means_every_step_compared():
    result = apply(two_heads(), [EliminateDeadCode(), ResizeNearest()])
    assert result.verified and result.verification.describe() == "verified"
    assert [s.verification.status for s in result.steps] == ["verified", "verified"]
    assert all(s.verification.digest_before != s.verification.digest_after for s in result.steps)


def test_no_verify_and_dry_run_are_not_verified_and_say_why():
    off = apply(two_heads(), [EliminateDeadCode()], verify=False)
    assert not off.verified and off.verification.describe() == "not verified (--no-verify)"
    assert off.steps[0].verification.reasons == ["not verified (--no-verify)"]
    dry = apply(two_heads(), [EliminateDeadCode()], dry_run=True)
    assert dry.verification.describe() == "not verified (dry run)"
    with pytest.raises(UsageError, match="--strict needs verification"):
        apply(two_heads(), [EliminateDeadCode()], verify=False, strict=True)


def test_strict_raises_with_the_result_attached():
    model = two_heads()
    FixShapes(batch="1")(model)
    with pytest.raises(NotVerifiedError, match=r"NOT VERIFIED: fix_shapes \(the batch is now dynamic but no "
                                               r"--verify-batches .*\(--strict\)") as info:
        apply(model, [FixShapes(batch="dynamic")], verify_batches=(), strict=True)
    assert info.value.result is not None and info.value.exit_code == 1
    assert not info.value.verification.verified
