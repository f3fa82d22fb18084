"""The entry point: one line per error, native libraries' stderr caught, only the verb asked for built."""

from __future__ import annotations

import os
import sys

import pytest

from surgery.cli import main as cli_main
from surgery.cli._native import Captured, capture_native_stderr

ORT_LOG = ("\x1b[1;31m2026-12-01 18:37:50.998 [E:onnxruntime:, sequential_executor.cc:677 ExecuteKernel] "
           "Non-zero status code returned while running Reshape node.\x1b[m\n")


def test_native_writes_to_fd2_are_caught_and_python_messages_pass(capfd):
    with capture_native_stderr() as native:
        os.write(2, ORT_LOG.encode())
        print("ours", file=sys.stderr)
    err = capfd.readouterr().err
    assert "ours" in err and "onnxruntime" not in err
    assert native.summary() == ("note: onnxruntime logged: Non-zero status code returned while running Reshape "
                                "node.")
    assert Captured("[W:onnxruntime:, graph.cc:1] Removing initializer 'x'\n").summary() is None  # warnings: quiet


def test_a_verb_that_succeeds_but_whose_libraries_logged_errors_prints_one_note(monkeypatch, capfd):
    import surgery.cli.listing

    def noisy(args):
        os.write(2, (ORT_LOG * 3).encode())
        return 0

    monkeypatch.setattr(surgery.cli.listing, "run", noisy)
    assert cli_main.main(["list", "passes"]) == 0
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: onnxruntime logged: Non-zero status") and "3 lines" in err[0]


def test_a_failed_verb_prints_only_its_own_line(monkeypatch, capfd):
    import surgery.cli.listing
    from surgery.errors import UsageError

    def failing(args):
        os.write(2, ORT_LOG.encode())
        raise UsageError("bad thing")

    monkeypatch.setattr(surgery.cli.listing, "run", failing)
    assert cli_main.main(["list", "passes"]) == 2
    assert capfd.readouterr().err.strip() == "error: bad thing"


@pytest.mark.parametrize(("exc", "code", "text"), [
    (RecursionError("maximum recursion depth exceeded"), 2, "error: an input is nested too deeply to read"),
    (KeyError("x"), 1, "error: internal error: KeyError: 'x' (run with --debug for the traceback)"),
])
def test_escaping_errors_are_one_line(monkeypatch, capsys, exc, code, text):
    import surgery.cli.listing

    def raises(args):
        raise exc

    monkeypatch.setattr(surgery.cli.listing, "run", raises)
    assert cli_main.main(["list", "passes"]) == code
    assert capsys.readouterr().err.strip() == text


def test_only_the_verb_asked_for_is_built_and_help_lists_every_verb(capsys):
    parser = cli_main.build_parser("inspect")
    assert parser.parse_args(["inspect", "m.onnx", "--json"]).json
    with pytest.raises(SystemExit):  # apply's parser was not built
        parser.parse_args(["apply", "m.onnx", "--pass", "eliminate_dead_code"])
    capsys.readouterr()
    assert cli_main._verb(["--debug", "apply", "m.onnx"]) == "apply" and cli_main._verb(["--version"]) is None
    with pytest.raises(SystemExit):
        cli_main.main(["--help"])
    out = capsys.readouterr().out
    assert all(verb in out for verb in cli_main.VERBS)
