"""The one process runner behind every vendor tool: no shell, a timeout, a log file, typed failures.

A vendor tool succeeds only when it exits 0 *and*, where it has one, prints its own
success line (``ATC run success``, ``&&&& PASSED``): ATC and friends have been seen to
exit 0 after a crash in a child, and a partial output must never pass for a result.
On failure :class:`~surgery.errors.ToolError` carries argv, exit code, the vendor error
code (``E10001``, ``EZ3003``) and the last lines of the log.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from surgery.errors import SurgeryError, ToolError, ToolNotFoundError

# Ascend error codes: E + digit-or-letter + four digits (E10001, E19010, EZ3003, E40000, EE1001)
ERROR_CODE = re.compile(r"\b(E[0-9A-Z]\d{4})\b")
_ERROR_LINE = re.compile(r"\[E\]|\bERROR\b|\bError\b")  # trtexec "[E] Error[2]: ...", "[ERROR] ..."
TAIL_LINES = 20
_MAX_KEPT_CHARS = 4 * 1024 * 1024  # output kept in memory for the parsers; the log file has all of it
_KILL_GRACE_S = 2.0


class ToolOutputError(SurgeryError):
    """A tool output (a log, summary JSON or CSV) that is corrupt, truncated or not the expected format.

    Raised by the parsers instead of returning a number they are not sure of.
    """


@dataclass(frozen=True)
class ToolRun:
    """A finished, successful tool run.

    Attributes:
        argv: the command as run.
        returncode: the exit status (0).
        seconds: wall time.
        log_path: the file holding the whole combined stdout and stderr, if one was asked for.
        output: the combined stdout and stderr (the last 4 MiB of it).
    """

    argv: tuple[str, ...]
    returncode: int
    seconds: float
    log_path: Path | None
    output: str

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of the output."""
        return "\n".join(self.output.splitlines()[-lines:])


def read_output_json(source: str | os.PathLike, what: str) -> object:
    """A JSON file a tool wrote, or a ToolOutputError saying it is unreadable or truncated."""
    where = str(source)
    try:
        return json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolOutputError(f"cannot read {what} {where}: {exc}") from None
    except RecursionError:
        raise ToolOutputError(f"{where} is JSON nested too deeply to be a tool output") from None
    except json.JSONDecodeError as exc:
        raise ToolOutputError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)") from None


def error_code(text: str) -> str | None:
    """The first Ascend error code (``E10001``, ``EZ3003``) in ``text``, or None."""
    match = ERROR_CODE.search(text)
    return match.group(1) if match else None


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """``argv`` as one shell line, with environment additions as ``NAME=value`` prefixes."""
    prefix = [f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items()]
    return " ".join([*prefix, shlex.join([str(a) for a in argv])])


def _matches(pattern: str | re.Pattern[str] | None, text: str) -> bool:
    if pattern is None:
        return True
    if isinstance(pattern, re.Pattern):
        return pattern.search(text) is not None
    return pattern in text


def run_tool(
    argv: Sequence[str | os.PathLike],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
    log_path: str | os.PathLike | None = None,
    success_line: str | re.Pattern[str] | None = None,
    failure_line: str | re.Pattern[str] | None = None,
) -> ToolRun:
    """Run a tool without a shell and judge its success.

    Args:
        argv: the command; ``argv[0]`` is looked up on PATH (of ``env`` if it sets one).
        env: variables added to (and overriding) the current environment.
        cwd: the working directory.
        timeout: seconds before the whole process group is killed.
        log_path: a file that receives the combined stdout and stderr as they come.
        success_line: text (or a regex) the output must contain for the run to count as a success.
        failure_line: text (or a regex) that marks a failure even when the exit code is 0.

    Returns:
        The finished run.

    Raises:
        ToolNotFoundError: ``argv[0]`` cannot be executed.
        ToolError: non-zero exit, timeout, a failure line, or a missing success line.
    """
    args = [str(a) for a in argv]
    name = Path(args[0]).name
    full_env = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
    log_file = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    kept: deque[str] = deque()
    kept_chars = 0

    def pump(stream) -> None:
        nonlocal kept_chars
        for line in iter(stream.readline, ""):
            if log_file is not None:
                log_file.write(line)
                log_file.flush()
            kept.append(line)
            kept_chars += len(line)
            while kept_chars > _MAX_KEPT_CHARS and len(kept) > 1:
                kept_chars -= len(kept.popleft())
        stream.close()

    started = time.perf_counter()
    try:
        # A new session makes the tool the leader of its own process group, so a timeout
        # kills the compiler workers it forks too (atc and aoe spawn many).
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=full_env, text=True, encoding="utf-8", errors="replace",
                                start_new_session=True)
    except FileNotFoundError:
        if log_file is not None:
            log_file.close()
        raise ToolNotFoundError(f"{name} not found (tried to run {args[0]})") from None
    except PermissionError:
        if log_file is not None:
            log_file.close()
        raise ToolNotFoundError(f"{args[0]} is not executable") from None
    reader = threading.Thread(target=pump, args=(proc.stdout,), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    reader.join(timeout=_KILL_GRACE_S)
    seconds = time.perf_counter() - started
    if log_file is not None:
        log_file.close()
    output = "".join(kept)
    tail = "\n".join(output.splitlines()[-TAIL_LINES:])
    where = f"; log: {log_path}" if log_path is not None else ""
    if timed_out:
        raise ToolError(f"{name} timed out after {timeout:g} s and was killed{where}", args, None, tail,
                        error_code(output))
    rc = proc.returncode
    if rc != 0:
        code = error_code(output)
        what = f"exit code {rc}" if rc > 0 else f"killed by signal {-rc}"
        raise ToolError(f"{name} failed ({what}{', ' + code if code else ''}): {_last_line(output)}{where}",
                        args, rc, tail, code)
    if failure_line is not None and _matches(failure_line, output):
        code = error_code(output)
        raise ToolError(f"{name} exited 0 but reported a failure{', ' + code if code else ''}: "
                        f"{_last_line(output)}{where}", args, rc, tail, code)
    if not _matches(success_line, output):
        expected = success_line.pattern if isinstance(success_line, re.Pattern) else success_line
        raise ToolError(f"{name} exited 0 without its success line {expected!r} (output incomplete?){where}",
                        args, rc, tail, error_code(output))
    return ToolRun(argv=tuple(args), returncode=rc, seconds=seconds,
                   log_path=Path(log_path) if log_path is not None else None, output=output)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the tool's process group, then SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(output: str) -> str:
    """The most telling line of a failed run: the last naming an error code, else the last error line, else the last."""
    lines = [s.strip() for s in output.splitlines() if s.strip()]
    for pattern in (ERROR_CODE, _ERROR_LINE):
        for line in reversed(lines):
            if pattern.search(line):
                return line[:300]
    return lines[-1][:300] if lines else "(no output)"
