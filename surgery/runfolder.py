"""A run folder: every artefact of one ``surgery run`` in one place, steps reused when their inputs are unchanged.

    runs/unetpp-20261201-183000/
        manifest.json        the run's key, its steps (key, status, outputs, result) and whether it finished
        before.onnx          step outputs, written atomically (a step's files appear only once it finished)
        after.onnx
        ...
        report.html

A *step* is named work with a *key*: the sha256 of what decides its result (the step's
kind and options, the digests of its inputs, surgery's version). :meth:`RunFolder.step`
runs it only when no finished step with that key exists, in this folder or in an earlier
run folder of the same model; otherwise the earlier outputs are linked (or copied) in and
its result is returned. A step writes into a private scratch folder that is moved into
place when it finishes, so an interrupted run leaves no partial outputs, and the manifest
is rewritten atomically after each step, so a rerun resumes where it stopped (Olive's
"cache slow steps by content" habit).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.atomic import write_text_atomic
from surgery.errors import UsageError

MANIFEST = "manifest.json"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def step_key(kind: str, options: Mapping[str, Any], inputs: Mapping[str, str] | None = None,
             version: str = "") -> str:
    """The content key of a step: kind, options, input digests and tool version, hashed."""
    payload = json.dumps({"kind": kind, "options": options, "inputs": dict(inputs or {}), "version": version},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class StepState:
    """A step as the manifest records it."""

    name: str
    key: str
    status: str = "running"  # running | done
    outputs: list[str] = field(default_factory=list)  # file names inside the run folder
    result: Any = None
    reused_from: str | None = None
    seconds: float = 0.0  # how long its work took when it ran (0 while running; kept when reused)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class StepOutputs:
    """Where a running step writes: ``path(name)`` is inside a scratch folder until the step finishes."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        if Path(name).name != name or name in (MANIFEST, "") or name.startswith("."):
            raise UsageError(f"a step output must be a plain file name, got {name!r}")
        if name not in self.names:
            self.names.append(name)
        return self.scratch / name


class RunFolder:
    """One run's folder and manifest (see the module docstring)."""

    def __init__(self, path: Path, run_key: str, model: str, manifest: dict[str, Any] | None = None):
        self.path = path
        self.run_key = run_key
        self.model = model
        data = manifest or {}
        self.steps: dict[str, StepState] = {
            name: StepState(**state) for name, state in data.get("steps", {}).items()}
        self.created = data.get("created") or _now()
        self.finished: str | None = data.get("finished")
        self.extra: dict[str, Any] = data.get("extra", {})
        self.reused: list[str] = []

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike, model: str, run_key: str, *, path: str | os.PathLike | None = None,
             resume: bool = True) -> RunFolder:
        """The run folder for ``model``: ``path`` if given, else an unfinished earlier run with the same
        ``run_key`` under ``root`` (when ``resume``), else a new ``<root>/<model>-<time>``.

        Raises:
            UsageError: ``path`` is a file, or a run folder of another run.
        """
        root = Path(root).absolute()
        if path is not None:
            folder = Path(path).absolute()
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"run folder {folder} is a file")
            manifest = _read_manifest(folder)
            if manifest and manifest.get("run_key") not in (None, run_key):
                raise UsageError(f"{folder} holds another run ({manifest.get('model')}, other options); "
                                 "give a new --run-dir")
            folder.mkdir(parents=True, exist_ok=True)
            run = cls(folder, run_key, model, manifest)
            run.save()
            return run
        if resume:
            for earlier in _run_folders(root, model):
                manifest = _read_manifest(earlier)
                if manifest and manifest.get("run_key") == run_key and not manifest.get("finished"):
                    return cls(earlier, run_key, model, manifest)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = root / f"{_SAFE.sub('_', model)}-{stamp}"
        n = 1
        while folder.exists():
            n += 1
            folder = root / f"{_SAFE.sub('_', model)}-{stamp}-{n}"
        folder.mkdir(parents=True)
        run = cls(folder, run_key, model)
        run.save()
        return run

    # -- steps -----------------------------------------------------------

    def step(self, name: str, key: str, work: Callable[[StepOutputs], Any]) -> Any:
        """Run ``work`` unless a finished step with ``key`` exists; its result either way.

        ``work`` gets a :class:`StepOutputs` and must write its files through ``outputs.path(name)``;
        its return value must be JSON-serialisable (it is kept in the manifest for reuse).
        """
        state = self.steps.get(name)
        if state and state.status == "done" and state.key == key and self._outputs_present(self.path, state):
            self.reused.append(name)
            return state.result
        earlier = self._find_done(name, key)
        if earlier is not None:
            folder, found = earlier
            for out in found.outputs:
                _link_or_copy(folder / out, self.path / out)
            self.steps[name] = StepState(name=name, key=key, status="done", outputs=list(found.outputs),
                                         result=found.result, reused_from=str(folder), seconds=found.seconds)
            self.reused.append(name)
            self.save()
            return found.result
        scratch = self.path / f".{_SAFE.sub('_', name)}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        self.steps[name] = StepState(name=name, key=key)
        self.save()
        started = time.perf_counter()
        try:
            outputs = StepOutputs(scratch)
            result = work(outputs)
            json.dumps(result, default=str)  # fail now, not at the next save, if it cannot be kept
            for out in outputs.names:
                if (scratch / out).exists():
                    os.replace(scratch / out, self.path / out)
            # a data file written beside a model (external data) moves with it
            for extra in scratch.iterdir():
                os.replace(extra, self.path / extra.name)
                if extra.name not in outputs.names:
                    outputs.names.append(extra.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.steps[name] = StepState(name=name, key=key, status="done", outputs=outputs.names, result=result,
                                     seconds=round(time.perf_counter() - started, 3))
        self.save()
        return result

    def seconds(self) -> dict[str, float]:
        """Each step's time in this run: what its work took, 0 for a step reused from an earlier run."""
        return {name: (0.0 if name in self.reused else state.seconds) for name, state in self.steps.items()}

    def file(self, name: str) -> Path:
        return self.path / name

    def finish(self, **extra: Any) -> None:
        self.extra.update(extra)
        self.finished = _now()
        self.save()

    def save(self) -> None:
        data = {"schema": "surgery.run", "model": self.model, "run_key": self.run_key, "created": self.created,
                "finished": self.finished, "steps": {n: s.to_dict() for n, s in self.steps.items()},
                "extra": self.extra}
        write_text_atomic(self.path / MANIFEST, json.dumps(data, indent=2, default=str) + "\n")

    # -- lookup ----------------------------------------------------------

    @staticmethod
    def _outputs_present(folder: Path, state: StepState) -> bool:
        return all((folder / out).is_file() for out in state.outputs)

    def _find_done(self, name: str, key: str) -> tuple[Path, StepState] | None:
        for folder in _run_folders(self.path.parent, self.model):
            if folder == self.path:
                continue
            manifest = _read_manifest(folder)
            state = (manifest or {}).get("steps", {}).get(name)
            if not state or state.get("status") != "done" or state.get("key") != key:
                continue
            found = StepState(**state)
            if self._outputs_present(folder, found):
                return folder, found
        return None


def _run_folders(root: Path, model: str) -> list[Path]:
    """Earlier run folders of ``model`` under ``root``, newest first."""
    if not root.is_dir():
        return []
    prefix = f"{_SAFE.sub('_', model)}-"
    folders = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix) and (p / MANIFEST).is_file()]
    return sorted(folders, key=lambda p: p.name, reverse=True)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == "surgery.run" else None


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
