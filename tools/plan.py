"""The plan executor, beside the process runner: run a :class:`~surgery.targets.plan.Plan`'s steps.

``--dry-run`` prints the plan; a real run hands the same steps to :func:`execute`, which
checks every tool is there before anything runs, runs each step through the shared runner,
and checks each step's required files. A step that fails skips the rest of its *group*
(one batch size) and the others go on: ICNet's bs8 running out of memory must not cost
bs1's numbers. :func:`plan_and_run` is the one "plan dry → check tools → materialise the
model → plan again → execute" sequence every vendor target uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from surgery.errors import SurgeryError, ToolError, ToolNotFoundError
from surgery.targets.plan import Plan, Step

from .ascend.env import find_tool, not_found_message, python_module_available
from .runner import ToolRun, run_tool

M = TypeVar("M")

# requirement name -> how to provide it, for tools outside CANN
PROVIDE: dict[str, str] = {
    "trtexec": "install TensorRT on the GPU host and put its bin/ (with trtexec) on PATH",
    "ais_bench": "install the aclruntime and ais_bench wheels (gitee Ascend/tools ais-bench_workload) into the "
                 "host's python3, or `msit install benchmark`",
    "surgery": "pip install onnx-surgery[torch] on the machine that exports the model",
    "amct_onnx": "pip install the amct_onnx wheel of the CANN toolkit (tools/amct/amct_onnx/) into the host's python3 "
                 "and build its amct_onnx_op custom-op package, so that amct_onnx is on PATH",
}


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
        internal: handlers for ``internal`` steps, keyed by ``step.info.kind``.
        on_step: called before each step runs, with its index.

    Returns:
        One result per step. A failed step skips the later steps of its group; a failed
        step outside any group stops the plan.

    Raises:
        ToolNotFoundError: a needed tool is missing (checked before anything runs).
        ToolError: an ungrouped step failed (a grouped one becomes a failed result).
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
                kind = step.info.kind
                handler = (internal or {}).get(kind)
                if handler is None:
                    raise ToolError(f"no handler for the internal step {kind!r}", step.argv)
                handler(step)
                results.append(StepResult(step, run=ToolRun(step.argv, 0, 0.0, None, "")))
                continue
            name = Path(step.argv[0]).name if not step.requires.startswith("python:") else step.requires[7:]
            run = _run(step, resolved, log_path=logs / f"{index + 1:02d}-{name}.log", timeout=timeout, env=env)
            results.append(StepResult(step, run=run))
        except SurgeryError as exc:
            if isinstance(exc, ToolNotFoundError) or not step.group:
                raise
            failed_groups[step.group] = str(exc)
            results.append(StepResult(step, error=exc))
    return results


def _run(step: Step, resolved: Mapping[str, str], *, log_path: str | os.PathLike | None, timeout: float | None,
         env: Mapping[str, str] | None) -> ToolRun:
    """Run one command step (tool resolved, folders made), then check its required files."""
    argv = list(step.argv)
    if not step.requires.startswith("python:") and os.sep not in step.requires:
        argv[0] = resolved.get(step.requires, argv[0])
    for directory in [*step.makedirs, *([step.cwd] if step.cwd else [])]:
        Path(directory).mkdir(parents=True, exist_ok=True)
    run = run_tool(argv, env={**(env or {}), **dict(step.env)}, cwd=step.cwd, timeout=timeout, log_path=log_path,
                   success_line=step.success_line, failure_line=step.failure_line)
    check_required_files(step, run)
    return run


def run_step(step: Step, *, log_path: str | os.PathLike | None = None, timeout: float | None = None,
             env: Mapping[str, str] | None = None) -> ToolRun:
    """Run one step alone, exactly as :func:`execute` runs it inside a plan.

    Raises:
        ToolNotFoundError: its tool is missing.
        ToolError: it failed, timed out, or left a required file missing or empty.
    """
    resolved = check_requirements(Plan(title=step.description, steps=[step]), env)
    return _run(step, resolved, log_path=log_path, timeout=timeout, env=env)


def check_required_files(step: Step, run: ToolRun) -> None:
    """A step that reported success must have left its required files, non-empty.

    Raises:
        ToolError: a required file is missing or empty.
    """
    for name in step.required_files:
        path = Path(step.cwd or ".") / name
        if not path.is_file() or path.stat().st_size == 0:
            state = "an empty" if path.is_file() else "no"
            raise ToolError(f"{Path(step.argv[0]).name} reported success but wrote {state} {path}", step.argv,
                            run.returncode, run.tail())


def plan_and_run(build: Callable[[M], Plan], planned: M, materialise: Callable[[], M], *,
                 log_dir: str | os.PathLike, timeout: float | None = None, env: Mapping[str, str] | None = None,
                 internal: Mapping[str, Internal] | None = None,
                 on_step: Callable[[int, Step], None] | None = None) -> tuple[Plan, M, list[StepResult]]:
    """Check the tools of the plan for ``planned`` (nothing exported yet), then materialise and run.

    A missing tool is reported before the (slow) zoo export; the plan that runs is built
    again from the materialised model (its real digest decides cached banks).

    Returns:
        (the plan that ran, the materialised model, one result per step).
    """
    check_requirements(build(planned), env)
    model = materialise()
    plan = build(model)
    return plan, model, execute(plan, log_dir=log_dir, timeout=timeout, env=env, internal=internal, on_step=on_step)
