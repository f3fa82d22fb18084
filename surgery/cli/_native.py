"""Native libraries' stderr (onnxruntime's coloured logs, protobuf's warnings) captured and reduced to one line.

onnxruntime, onnxsim and protobuf write from C++ straight to file descriptor 2, around
Python: a failed session prints a multi-line coloured ``[E:onnxruntime:...]`` block even
though the error also reaches us as an exception, which the verb turns into its one-line
message. While a verb runs, fd 2 points at a temporary file and Python's ``sys.stderr``
at the real stderr, so our own messages pass and the libraries' are caught. Afterwards
the caught text is shown whole with ``--debug``, as one ``note:`` line when a run that
succeeded logged errors, and not at all otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# [E:onnxruntime:, sequential_executor.cc:677 ExecuteKernel] message  /  [libprotobuf ERROR ...] message
_ORT_LINE = re.compile(r"\[([EFW]):onnxruntime:[^\]]*\]\s*(.*)")
_ERROR_WORDS = re.compile(r"\[[EF]:|\bERROR\b|\bFATAL\b|\berror\b")


@dataclass
class Captured:
    """What native code wrote to stderr while a verb ran."""

    text: str = ""

    def lines(self) -> list[str]:
        """The lines, colour codes removed, blank lines dropped."""
        return [s for s in (_ANSI.sub("", line).strip() for line in self.text.splitlines()) if s]

    def summary(self) -> str | None:
        """One line for a run that succeeded but whose libraries logged errors; None when there were none."""
        lines = self.lines()
        errors = [line for line in lines if _ERROR_WORDS.search(line)]
        if not errors:
            return None
        first = errors[0]
        match = _ORT_LINE.search(first)
        source, message = ("onnxruntime", match.group(2)) if match else ("a native library", first)
        more = f" ({len(lines)} lines; --debug shows them)" if len(lines) > 1 else ""
        return f"note: {source} logged: {message[:200]}{more}"


@contextlib.contextmanager
def capture_native_stderr() -> Iterator[Captured]:
    """Point fd 2 at a temporary file for the duration; ``sys.stderr`` keeps writing to the real stderr."""
    captured = Captured()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to protect
        yield captured
        return
    sink = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in the finally below
    python_stderr = sys.stderr
    swapped = False
    try:
        try:
            uses_fd2 = python_stderr is not None and python_stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # pytest's capsys and other in-memory streams
            uses_fd2 = False
        if python_stderr is not None:
            python_stderr.flush()
        os.dup2(sink.fileno(), 2)
        if uses_fd2:
            sys.stderr = open(saved, "w", encoding="utf-8", errors="backslashreplace", buffering=1,  # noqa: SIM115
                              closefd=False)
            swapped = True
        yield captured
    finally:
        if swapped:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        captured.text = sink.read(1 << 20).decode("utf-8", errors="replace")
        sink.close()
