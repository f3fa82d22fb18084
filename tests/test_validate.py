from __future__ import annotations

import math

import pytest

from surgery import validate
from surgery.errors import UsageError


@pytest.mark.parametrize(("check", "value", "kwargs", "message"), [
    (validate.count, "-1", {"name": "--samples"}, "--samples must be >= 1, got '-1'"),
    (validate.count, "3.5", {"name": "--samples"}, "--samples expects an integer"),
    (validate.count, "99999999999999999999", {"name": "--iterations"}, "--iterations must be <= 10,000,000"),
    (validate.seed, "-1", {}, "--seed must be >= 0"),
    (validate.seed, str(2**32), {}, "--seed must be <= 4,294,967,295"),
    (validate.tolerance, "nan", {"name": "--atol"}, "--atol must be a finite number >= 0"),
    (validate.tolerance, "-1e-3", {"name": "--rtol"}, "--rtol must be a finite number >= 0"),
    (validate.seconds, "nan", {"name": "--min-time"}, "--min-time must be a finite number of seconds"),
    (validate.seconds, "-1", {"name": "--timeout"}, "--timeout must be a finite number of seconds > 0"),
    (validate.seconds, "inf", {"name": "--timeout"}, "finite"),
    (validate.threads, "100000", {}, "--threads must be <="),
    (validate.dim, "99999999999999999999", {"name": "batch"}, "batch must be <= 2,147,483,647"),
    (validate.dim, "0", {"name": "batch"}, "batch must be >= 1"),
    (validate.number, "inf", {"name": "percentile"}, "percentile must be a finite number"),
    (validate.path, "", {"name": "--record"}, "--record is an empty path"),
    (validate.path, "a\x00b", {"name": "--record"}, "contains a NUL byte"),
    (validate.existing_file, "/nonexistent/x.npz", {"name": "--inputs"}, "--inputs file not found"),
    (validate.existing_file, "/", {"name": "--inputs"}, "is not a file"),
    (validate.existing_folder, "/nonexistent", {"name": "--bank"}, "--bank folder not found"),
])
def test_bad_values_are_one_line_usage_errors_naming_the_value(check, value, kwargs, message):
    with pytest.raises(UsageError) as info:
        check(value, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_good_values_come_back_typed():
    assert validate.count("3", "--samples") == 3
    assert validate.count(0, "--warmup", minimum=0) == 0
    assert validate.seed("0") == 0
    assert validate.tolerance("1e-5", "--atol") == 1e-5
    assert validate.seconds("0.5", "--min-time") == 0.5
    assert validate.threads("0") == 0
    assert validate.dim(" 16 ", "batch") == 16
    assert math.isclose(validate.number("2.5", "x", minimum=0, maximum=3), 2.5)
    assert validate.existing_folder("/", "--bank") == "/"


def test_generated_inputs_have_a_memory_limit(monkeypatch):
    monkeypatch.setenv("SURGERY_MAX_INPUT_BYTES", str(2**20))
    assert validate.input_bytes({"x": (1, 3, 8, 8)}, {"x": 4}) == 768
    with pytest.raises(UsageError, match=r"x:1000x1000.*over the 0.0 GiB limit"):
        validate.input_bytes({"x": (1000, 1000)}, {"x": 4})
    monkeypatch.setenv("SURGERY_MAX_INPUT_BYTES", "lots")
    with pytest.raises(UsageError, match="SURGERY_MAX_INPUT_BYTES"):
        validate.max_input_bytes()


def test_argparse_types_fail_with_the_validators_words(model_path, capsys):
    from surgery.cli.main import main

    for flags, message in ((["--samples", "-1"], "--samples must be >= 1"), (["--seed", "-1"], "--seed must be >= 0"),
                           (["--atol", "nan"], "--atol must be a finite number"),
                           (["--input-shapes", "x:99999999999999999999x3x8x8"], "is over 2,147,483,647")):
        assert main(["apply", str(model_path), "--pass", "eliminate_dead_code", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "internal error" not in err


def test_the_verification_run_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SURGERY_VERIFY_TIMEOUT", raising=False)
    assert validate.max_run_seconds() == validate.DEFAULT_RUN_SECONDS
    monkeypatch.setenv("SURGERY_VERIFY_TIMEOUT", "2.5")
    assert validate.max_run_seconds() == 2.5
    monkeypatch.setenv("SURGERY_VERIFY_TIMEOUT", "nan")
    with pytest.raises(UsageError, match="SURGERY_VERIFY_TIMEOUT must be a finite number of seconds"):
        validate.max_run_seconds()
