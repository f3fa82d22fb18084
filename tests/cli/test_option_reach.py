"""Every option of every verb is read somewhere below the parser (issue 8: nothing accepted and dropped).

A static walk: for each verb, each argparse destination must be read by the verb's module or
by the CLI helpers it builds requests with (``args.dest``, ``getattr(args, "dest")``, or a
settings tuple naming ``"dest"``). The behavioural walks of the options that matter most
(``--seed`` into the sweep, zoo options into vendor plans, settings a target cannot honour
refused) are in the verbs' own test files; this one catches the next option added and forgotten.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from surgery.cli.main import VERBS, build_parser

CLI = Path(importlib.import_module("surgery.cli.main").__file__).parent
HELPERS = [p for p in CLI.glob("_*.py") if p.name != "__init__.py"]
# read outside the verb modules: the parser's own (--help) and main's
GLOBAL = {"help", "debug", "verb", "_run", "_unavailable", "argv"}


def _dests(verb: str) -> list[str]:
    parser = build_parser(verb)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [a.dest for a in sub.choices[verb]._actions
            if a.dest not in GLOBAL and a.dest is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _read(dest: str, text: str) -> bool:
    return bool(re.search(rf"\.{dest}\b|[\"']{dest}[\"']", text))


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_option_is_read_below_the_parser(verb):
    module = Path(importlib.import_module(VERBS[verb]).__file__)
    text = module.read_text() + "".join(p.read_text() for p in HELPERS)
    dropped = [d for d in _dests(verb) if not _read(d, text)]
    assert not dropped, f"surgery {verb}: options parsed and never read: {dropped}"


def test_the_walk_finds_a_dropped_option():
    assert not _read("forgotten_flag", "args.seed; settings = ('threads',)")
    assert _read("seed", "x = args.seed") and _read("threads", "SETTINGS = ('threads',)")
