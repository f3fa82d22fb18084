"""Typed errors. Each carries a one-line message and the CLI exit code it maps to.

Exit codes follow the CLI convention: 2 for bad usage or bad input, 1 for a
verification or tool failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type name if empty."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class SurgeryError(Exception):
    """Base class of every error the CLI turns into a one-line message."""

    exit_code = 2


class UsageError(SurgeryError):
    """A command line, option or argument that cannot be used as given."""


class ModelLoadError(SurgeryError):
    """A model file that is missing, not ONNX, truncated or otherwise unreadable."""


class ModelSaveError(SurgeryError):
    """An output that cannot be written (missing folder, would overwrite the input, ...)."""


class UnknownNameError(UsageError):
    """An unknown pass, option, model or output name, with a "did you mean" hint."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = "" if close or len(known) > 12 else f" (known: {', '.join(known)})"
        super().__init__(f"unknown {kind} {name!r}{hint}{listing}")
        self.kind, self.name, self.suggestions = kind, name, close


class PassError(SurgeryError):
    """A pass that failed while running; names the pass and the passes before it."""

    exit_code = 1

    def __init__(self, message: str, pass_name: str = "", before: Iterable[str] = ()):
        before = list(before)
        self.pass_name, self.before, self.detail = pass_name, before, message
        if pass_name:
            after = f"after {', '.join(before)}" if before else "the first pass"
            message = f"pass {pass_name} ({after}): {message}"
        super().__init__(message)


class PreconditionError(PassError):
    """A pass's ``requires`` found the model unfit for it."""


class PostconditionError(PassError):
    """A pass's ``ensures`` found it did not keep its promise."""


class VerificationError(SurgeryError):
    """A verification instrument (checker, shape inference, parity) rejected a pass's output."""

    exit_code = 1


class ToolError(SurgeryError):
    """An external tool run that failed: carries argv, exit code and the log tail."""

    exit_code = 1

    def __init__(self, message: str, argv: Iterable[str] = (), returncode: int | None = None,
                 log_tail: str = "", code: str | None = None):
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.log_tail = log_tail
        self.code = code  # vendor error code, e.g. Ascend "E10001"


class ToolNotFoundError(SurgeryError):
    """A vendor tool that is not installed or not on PATH; the message says how to provide it."""

    exit_code = 2


class RecordError(SurgeryError):
    """A record file that cannot be read as a surgery run or perf record."""
