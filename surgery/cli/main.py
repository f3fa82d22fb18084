"""``surgery``: the command line. One module per verb, listed here explicitly."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from surgery import __version__
from surgery.errors import SurgeryError, first_line

from ._native import Captured, capture_native_stderr

# verb name -> module; a verb whose optional dependency is missing still lists and says what is missing
VERBS: dict[str, str] = {
    "run": "surgery.cli.run",
    "list": "surgery.cli.listing",
    "inspect": "surgery.cli.inspect",
    "apply": "surgery.cli.apply",
    "export": "surgery.cli.export",
    "bench": "surgery.cli.bench",
    "diff": "surgery.cli.diff",
    "tune": "surgery.cli.tune",
    "compile": "surgery.cli.compile",
    "import": "surgery.cli.import_",
    "scan": "surgery.cli.scan",
    "eval": "surgery.cli.eval",
    "data": "surgery.cli.data",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, just that verb's (the one the command line names).

    Building every verb's parser costs a few tens of milliseconds that a single command never
    uses; ``surgery --help`` and a command line naming no verb still build them all.
    """
    parser = argparse.ArgumentParser(
        prog="surgery",
        description="ONNX graph surgery: rewrite, verify, compile, benchmark and compare models.",
    )
    parser.add_argument("--version", action="version", version=f"surgery {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, module_name in VERBS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(_unavailable=str(exc))
            continue
        # help= is %-formatted by argparse, description= is not
        p = sub.add_parser(name, help=module.HELP, description=module.HELP.replace("%%", "%"))
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _verb(argv: Sequence[str]) -> str | None:
    """The verb a command line names (after global flags), or None when it names none."""
    for token in argv:
        if token == "--debug":
            continue
        return token if token in VERBS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_verb(sys.argv[1:] if argv is None else list(argv)))
    try:
        args = parser.parse_args(argv)
    except SurgeryError as exc:  # a validator used as an argparse type= (surgery.validate.arg)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.verb:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"error: surgery {args.verb} is unavailable: {args._unavailable}", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    code = 1
    native = Captured()
    try:
        with capture_native_stderr() as native:
            code = int(args._run(args) or 0)
        return code
    except SurgeryError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
        return code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
        return code
    except RecursionError:  # a pathologically nested input (JSON, protobuf) that a parser recursed into
        if args.debug:
            raise
        print("error: an input is nested too deeply to read", file=sys.stderr)
        code = 2
        return code
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            raise
        print(f"error: internal error: {type(exc).__name__}: {first_line(exc)} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return 1
    finally:
        _report_native(native, debug=args.debug, ok=code == 0)


def _report_native(native: Captured, *, debug: bool, ok: bool) -> None:
    """What native libraries printed: whole with --debug, one line after a success that logged errors."""
    if debug and native.text:
        sys.stderr.write(native.text)
        return
    line = native.summary() if ok else None
    if line:
        print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
