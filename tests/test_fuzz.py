"""A 200-mutant slice of benchmarks/fuzz.py: no mutated model reaches an internal error or hangs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[1] / "benchmarks" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("surgery_fuzz", FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules["surgery_fuzz"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("surgery_fuzz", None)


def test_a_200_mutant_slice_has_no_internal_error_hang_or_broken_contract(fuzz, tmp_path):
    # seed 7 holds, among others, a dim asking for petabytes, names that are not UTF-8 and
    # external data with a NUL byte: each an internal error before the validators
    report = fuzz.fuzz(200, seed=7, timeout=120, parallel=2, root=tmp_path)
    counts = report.counts()
    assert not report.findings(), report.text()
    assert len(report.runs) == 400 and counts[fuzz.OK] and counts[fuzz.USAGE] and counts[fuzz.VERIFY]
    assert {r.base for r in report.runs} == {"conv", "branches", "external", "sparse", "loop"}


def test_the_fuzzer_reports_what_escapes(fuzz, tmp_path, monkeypatch):
    import surgery.cli.inspect

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(surgery.cli.inspect, "run", broken)  # the forked children inherit it
    report = fuzz.fuzz(3, seed=0, timeout=60, root=tmp_path)
    inspected = [r for r in report.runs if r.command[0] == "inspect"]
    assert {r.outcome for r in inspected} <= {fuzz.INTERNAL, fuzz.USAGE} and report.counts()[fuzz.INTERNAL] >= 1


def test_mutants_are_reproducible(fuzz, tmp_path):
    a = fuzz.make_mutant(17, 3, tmp_path / "a")
    b = fuzz.make_mutant(17, 3, tmp_path / "b")
    assert a.mutations == b.mutations and a.path.read_bytes() == b.path.read_bytes()


def test_mutant_1616_values_that_do_not_fill_their_dims_are_one_line_not_an_internal_error(fuzz, tmp_path, capsys):
    # found by the 10,000-mutant run: an If branch's Constant whose typed values do not fill its dims,
    # in a model whose mutated dims make it "large", reached numpy's reshape through the digest
    from surgery.cli.main import main

    mutant = fuzz.make_mutant(1616, 0, tmp_path)
    rc = main(["apply", str(mutant.path), "--pass", "truncate", "tensors=r", "-o", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "its values do not match its dims" in err, err
    assert not (tmp_path / "o.onnx").exists()
