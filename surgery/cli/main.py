"""``surgery``: the command line. One module per verb, listed here explicitly."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from surgery import __version__
from surgery.errors import SurgeryError

# verb name -> module; a verb whose optional dependency is missing still lists and says what is missing
VERBS: dict[str, str] = {
    "list": "surgery.cli.listing",
    "inspect": "surgery.cli.inspect",
    "apply": "surgery.cli.apply",
    "export": "surgery.cli.export",
    "bench": "surgery.cli.bench",
    "diff": "surgery.cli.diff",
    "tune": "surgery.cli.tune",
    "compile": "surgery.cli.compile",
    "import": "surgery.cli.import_",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surgery",
        description="ONNX graph surgery: rewrite, verify, compile, benchmark and compare models.",
    )
    parser.add_argument("--version", action="version", version=f"surgery {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, module_name in VERBS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(_unavailable=str(exc))
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
    try:
        return int(args._run(args) or 0)
    except SurgeryError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: internal error: {type(exc).__name__}: {text} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
