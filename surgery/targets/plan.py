"""A plan: the ordered vendor-tool commands one surgery command runs, printable and executable.

``--dry-run`` prints :meth:`Plan.render` (exact shell lines a user can paste on the NPU
or GPU host); a real run hands the same steps to ``surgery.tools.plan.execute``, which
runs each one through the shared process runner. Plans are plain data: each tool adapter
builds its own :class:`Step` (with a typed :class:`StepInfo` and the files it must leave
behind), and targets read their results back through that info.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepInfo:
    """What a target needs to read a step's result back: what kind of step, for which batch and build.

    Attributes:
        kind: ``atc``, ``aoe``, ``ais_bench``, ``trtexec``, ``benchmark`` or ``export``.
        batch: the batch size the step serves.
        build: which build it belongs to (``untuned``, ``aoe``, ``auto_tune``), if any.
        om: the compiled model the step writes or reads.
        summary: the result file the step writes (ais_bench's summary JSON).
        job_type: the AOE job type.
    """

    kind: str
    batch: int | None = None
    build: str | None = None
    om: str | None = None
    summary: str | None = None
    job_type: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


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
        info: what the caller needs to read the result (kind, batch, build...).
        required_files: files that must exist and be non-empty after the step succeeds (an .om):
            a tool that says "success" but wrote nothing fails.
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
    info: StepInfo = field(default_factory=lambda: StepInfo("command"))
    required_files: tuple[str, ...] = ()

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
                "group": self.group, "skip": self.skip, "info": self.info.to_dict()}


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
