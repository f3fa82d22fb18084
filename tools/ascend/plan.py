"""A plan: the ordered vendor-tool commands one surgery command runs, printable and executable.

``--dry-run`` prints :meth:`Plan.render` (exact shell lines a user can paste on the NPU
or GPU host); a real run hands the same steps to :func:`execute`, which runs each one
through the shared runner. A step that fails skips the rest of its *group* (one batch
size) and the others go on: ICNet's bs8 running out of memory must not cost bs1's numbers.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.errors import SurgeryError, ToolError, ToolNotFoundError

from ..runner import ToolRun, run_tool
from .env import find_tool, not_found_message, python_module_available

# requirement name -> how to provide it, for tools outside CANN
PROVIDE: dict[str, str] = {
    "trtexec": "install TensorRT on the GPU host and put its bin/ (with trtexec) on PATH",
    "ais_bench": "install the aclruntime and ais_bench wheels (gitee Ascend/tools ais-bench_workload) into the "
                 "host's python3, or `msit install benchmark`",
    "surgery": "pip install onnx-surgery[torch] on the machine that exports the model",
}


@dataclass(frozen=True)
class Step:
    """One command of a plan.

    Attributes:
        argv: the command.
        description: one line saying what it does (a comment in the rendered plan).
        requires: the tool it needs: an executable name (``atc``), ``python:<module>``, or
            ``internal`` for a step surgery does in-process (shown as its CLI equivalent).
        env: variables added to the environment (``TUNE_BANK_PATH``).
        cwd: the working directory, None for the plan's.
        produces: files it writes.
        success_line, failure_line: as :func:`~surgery.tools.runner.run_tool`.
        group: a failure skips the later steps of the same group (e.g. ``bs8``).
        skip: why the step is not run (a cache hit); rendered commented out.
        meta: what the caller needs to read the result (kind, batch, build label...).
    """

    argv: tuple[str, ...]
    description: str
    requires: str
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    produces: tuple[str, ...] = ()
    success_line: str | re.Pattern[str] | None = None
    failure_line: str | re.Pattern[str] | None = None
    group: str = ""
    skip: str | None = None
    makedirs: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def shell(self) -> str:
        """The step as one shell line: ``[mkdir -p DIRS && ][cd DIR && ][VAR=value ]command``."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env)
        line = " ".join(p for p in (prefix, shlex.join(self.argv)) if p)
        dirs = [*self.makedirs, *([self.cwd] if self.cwd and self.cwd not in self.makedirs else [])]
        if self.cwd:
            line = f"(cd {shlex.quote(self.cwd)} && {line})"
        if dirs:
            line = f"mkdir -p {' '.join(shlex.quote(d) for d in dirs)} && {line}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "shell": self.shell(), "description": self.description,
                "requires": self.requires, "env": dict(self.env), "cwd": self.cwd, "makedirs": list(self.makedirs),
                "produces": list(self.produces),
                "group": self.group, "skip": self.skip, "meta": dict(self.meta)}


@dataclass
class Plan:
    """Ordered steps plus notes (what happens outside the commands, cache hits, assumptions)."""

    title: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def render(self) -> str:
        """The whole plan as a shell script: comments for descriptions and notes, one line per command."""
        lines = [f"# {self.title}"]
        lines += [f"# note: {n}" for n in self.notes]
        for i, step in enumerate(self.steps, 1):
            lines.append("")
            lines.append(f"# [{i}] {step.description}")
            if step.skip:
                lines.append(f"# skipped: {step.skip}")
                lines.append(f"# {step.shell()}")
            else:
                lines.append(step.shell())
        return "\n".join(lines) + "\n"

    def requirements(self) -> list[str]:
        """The tools the steps that will run need, in first-use order."""
        out: list[str] = []
        for step in self.steps:
            if step.skip is None and step.requires != "internal" and step.requires not in out:
                out.append(step.requires)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "notes": list(self.notes), "steps": [s.to_dict() for s in self.steps]}


def check_requirements(plan: Plan, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve every tool the plan needs before running anything.

    Returns:
        requirement → executable path (``python:<module>`` maps to the interpreter name).

    Raises:
        ToolNotFoundError: one line naming the first missing tool and how to provide it.
    """
    resolved: dict[str, str] = {}
    for req in plan.requirements():
        if req.startswith("python:"):
            module = req.split(":", 1)[1]
            python = next((s.argv[0] for s in plan.steps if s.requires == req), "python3")
            if not python_module_available(module, python, env):
                raise ToolNotFoundError(not_found_message(f"{python} -m {module}", PROVIDE.get(module)))
            resolved[req] = python
            continue
        if os.sep in req:  # an explicit path such as ./benchmark.x86_64
            if not (Path(req).is_file() and os.access(req, os.X_OK)):
                raise ToolNotFoundError(not_found_message(req, f"copy the binary there and chmod u+x {req}"))
            resolved[req] = req
            continue
        found = find_tool(req, env)
        if found is None:
            raise ToolNotFoundError(not_found_message(req, PROVIDE.get(req)))
        resolved[req] = str(found)
    return resolved


@dataclass
class StepResult:
    """What happened to one step: its run, its failure, or why it was skipped."""

    step: Step
    run: ToolRun | None = None
    error: SurgeryError | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.run is not None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shell": self.step.shell(), "group": self.step.group,
                               "ok": self.ok, "skipped": self.skipped}
        if self.run is not None:
            out.update(seconds=round(self.run.seconds, 3),
                       log=str(self.run.log_path) if self.run.log_path else None)
        if self.error is not None:
            out["error"] = str(self.error)
            if isinstance(self.error, ToolError):
                out.update(code=self.error.code, returncode=self.error.returncode, log_tail=self.error.log_tail)
        return out


Internal = Callable[[Step], None]


def execute(plan: Plan, *, log_dir: str | os.PathLike, timeout: float | None = None,
            env: Mapping[str, str] | None = None, internal: Mapping[str, Internal] | None = None,
            on_step: Callable[[int, Step], None] | None = None) -> list[StepResult]:
    """Run a plan's steps in order through the shared runner.

    Args:
        plan: the steps.
        log_dir: each step's combined output goes to ``<log_dir>/<NN>-<tool>.log``.
        timeout: seconds per step.
        env: the environment tools are looked up in and run with (default: this process's).
        internal: handlers for ``internal`` steps, keyed by ``step.meta["kind"]``.
        on_step: called before each step runs, with its index.

    Returns:
        One result per step. A failed step skips the later steps of its group; a failed
        step outside any group stops the plan.

    Raises:
        ToolNotFoundError: a needed tool is missing (checked before anything runs).
        ToolError: an ungrouped step failed.
    """
    resolved = check_requirements(plan, env)
    logs = Path(log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    failed_groups: dict[str, str] = {}
    results: list[StepResult] = []
    for index, step in enumerate(plan.steps):
        if step.skip is not None:
            results.append(StepResult(step, skipped=step.skip))
            continue
        if step.group and step.group in failed_groups:
            results.append(StepResult(step, skipped=f"an earlier step of {step.group} failed"))
            continue
        if on_step is not None:
            on_step(index, step)
        try:
            if step.requires == "internal":
                kind = step.meta.get("kind", "")
                handler = (internal or {}).get(kind)
                if handler is None:
                    raise ToolError(f"no handler for the internal step {kind!r}", step.argv)
                handler(step)
                results.append(StepResult(step, run=ToolRun(step.argv, 0, 0.0, None, "")))
                continue
            argv = list(step.argv)
            if not step.requires.startswith("python:") and os.sep not in step.requires:
                argv[0] = resolved.get(step.requires, argv[0])
            for directory in [*step.makedirs, *([step.cwd] if step.cwd else [])]:
                Path(directory).mkdir(parents=True, exist_ok=True)
            name = Path(step.argv[0]).name if not step.requires.startswith("python:") else step.requires[7:]
            run = run_tool(argv, env={**(env or {}), **dict(step.env)}, cwd=step.cwd, timeout=timeout,
                           log_path=logs / f"{index + 1:02d}-{name}.log", success_line=step.success_line,
                           failure_line=step.failure_line)
            results.append(StepResult(step, run=run))
        except SurgeryError as exc:
            if isinstance(exc, ToolNotFoundError) or not step.group:
                raise
            failed_groups[step.group] = str(exc)
            results.append(StepResult(step, error=exc))
    return results
