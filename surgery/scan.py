"""``surgery scan``: which passes would change each model, at how many sites, and its TransData sources.

Like auto-optimizer's ``evaluate`` (which printed ``<file>\t<knowledges>``), but each pass
runs for real on its own copy of the model, so a pass that would fail says so, and the
row carries the pass's counts. A pass that needs options (``prune_outputs outputs=``) is
not run and is listed as such; passes that are slow by nature (calibration) are skipped
unless asked for. The TransData estimate is :func:`surgery.transdata.estimate`.

Models are scanned in parallel, one process each, forked from a fork server that imported
the passes once (cheap to start; nothing inherited from the caller's threads). A file that
is not a model, or a pass that raises, becomes a row with the error; a process that dies
(a crash inside onnx's C++) costs only its own model, whose row says so. The registry of
passes is handed in (the core imports no passes).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from surgery.errors import SurgeryError, UnknownNameError, UsageError, first_line
from surgery.graph import load_model_file, opset_version
from surgery.pass_infra import Pass
from surgery.transdata import estimate

# passes whose dry run costs model runs, not graph walks: run only when named with --pass
SLOW_PASSES: dict[str, str] = {"quantize_int8": "calibrates on sample inputs (minutes on large models)"}


@dataclass
class PassScan:
    """One pass on one model: would it change it, where (its counts), or why it could not run."""

    name: str
    exact: bool
    changed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def sites(self) -> int:
        """The sum of the pass's counts: what it matched and rewrote."""
        return sum(self.counts.values())


@dataclass
class ModelScan:
    """One model's row: size, TransData sources, and every pass's result (or the error reading it)."""

    path: str
    nodes: int = 0
    opset: int = 0
    transdata: dict = field(default_factory=dict)
    passes: list[PassScan] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def would_change(self) -> list[PassScan]:
        return [p for p in self.passes if p.changed]

    def to_dict(self) -> dict:
        data = asdict(self)
        for d, p in zip(data["passes"], self.passes, strict=True):
            d["sites"] = p.sites
        return data


@dataclass
class ScanReport:
    """Every model's row, and the passes that were not run (needing options, or slow) with why."""

    models: list[ModelScan]
    passes: list[str]
    not_run: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"models": [m.to_dict() for m in self.models], "passes": list(self.passes),
                "not_run": dict(self.not_run)}


def find_models(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files given, and every ``*.onnx`` under the folders given (recursively), in order, once each.

    Raises:
        UsageError: a path that does not exist, or a folder with no ``.onnx`` file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.onnx") if p.is_file())
            if not found:
                raise UsageError(f"no .onnx file under {path}")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def choose_passes(registry: Mapping[str, type[Pass]], wanted: Sequence[str] = (),
                  skip: Sequence[str] = ()) -> tuple[dict[str, Pass], dict[str, str]]:
    """The passes to run, built with their defaults, and those not run with the reason.

    Raises:
        UsageError: a name in ``wanted`` or ``skip`` that is not in the registry, or a wanted pass
            that cannot run without options.
    """
    for name in (*wanted, *skip):
        if name not in registry:
            raise UnknownNameError("pass", name, registry)
    chosen: dict[str, Pass] = {}
    not_run: dict[str, str] = {}
    for name, cls in registry.items():
        if wanted and name not in wanted:
            continue
        if name in skip:
            not_run[name] = "skipped (--skip)"
            continue
        if name in SLOW_PASSES and name not in wanted:
            not_run[name] = f"{SLOW_PASSES[name]}: scan it with --pass {name}"
            continue
        try:
            chosen[name] = cls.from_strings({})
        except UsageError as exc:
            if wanted:
                raise UsageError(f"pass {name} cannot run in a scan: {exc}") from None
            not_run[name] = f"needs options ({first_line(exc)})"
    return chosen, not_run


def scan_model(path: str | os.PathLike, passes: Mapping[str, Pass]) -> ModelScan:
    """Read one model, estimate its TransData sources, dry-run every pass on a copy. Never raises."""
    start = time.perf_counter()
    row = ModelScan(path=str(path))
    try:
        model = load_model_file(path).model
        row.nodes, row.opset = len(model.graph.node), opset_version(model)
        row.transdata = estimate(model).to_dict()
    except SurgeryError as exc:
        row.error = first_line(exc)
        return row
    except Exception as exc:  # a file onnx accepts but its shape inference trips over
        row.error = f"{type(exc).__name__}: {first_line(exc)}"
        return row
    for name, p in passes.items():
        result = PassScan(name=name, exact=p.exact)
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        t0 = time.perf_counter()
        try:
            outcome = p(copy)
            result.changed, result.counts = bool(outcome.changed), dict(outcome.counts)
        except Exception as exc:  # a pass that fails on this model is a row's finding, not the scan's end
            result.error = f"{type(exc).__name__}: {first_line(exc)}" if not isinstance(exc, SurgeryError) \
                else first_line(exc)
        result.seconds = time.perf_counter() - t0
        row.passes.append(result)
    row.seconds = time.perf_counter() - start
    return row


def scan(paths: Sequence[str | os.PathLike], passes: Mapping[str, Pass], *, jobs: int | None = None,
         on_done: Callable[[ModelScan], None] | None = None) -> list[ModelScan]:
    """Scan every model, ``jobs`` processes at a time (default: one per core, at most one per model).

    Rows come back in the order of ``paths``; ``on_done`` sees each as it finishes.
    """
    paths = [str(p) for p in paths]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths)))
    rows: dict[int, ModelScan] = {}
    if jobs == 1:
        for k, p in enumerate(paths):
            rows[k] = scan_model(p, passes)
            if on_done:
                on_done(rows[k])
        return [rows[k] for k in range(len(paths))]
    crashed = _run_pool(paths, list(range(len(paths))), passes, jobs, rows, on_done)
    # a dead worker breaks the whole pool: rerun the unfinished models one per pool to find the one that died
    for k in crashed:
        if _run_pool(paths, [k], passes, 1, rows, on_done):
            rows[k] = ModelScan(path=paths[k], error="the scanning process died (a crash inside onnx or "
                                                     "onnxruntime on this model)")
            if on_done:
                on_done(rows[k])
    return [rows[k] for k in range(len(paths))]


def _context(passes: Mapping[str, Pass]) -> multiprocessing.context.BaseContext:
    """A forkserver (spawn where there is none): workers fork from a clean process that has imported the
    scan and the passes once, instead of each paying the imports, or inheriting the caller's threads."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["surgery.scan", *sorted({type(p).__module__ for p in passes.values()})])
    return context


def _run_pool(paths: list[str], todo: list[int], passes: Mapping[str, Pass], jobs: int, rows: dict[int, ModelScan],
              on_done: Callable[[ModelScan], None] | None) -> list[int]:
    """Run ``todo`` in one pool; returns the models left unfinished because a worker died."""
    context = _context(passes)
    unfinished: list[int] = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
        futures: dict[Future, int] = {pool.submit(scan_model, paths[k], passes): k for k in todo}
        for future in as_completed(futures):
            k = futures[future]
            try:
                rows[k] = future.result()
            except BrokenProcessPool:
                unfinished.append(k)
                continue
            if on_done:
                on_done(rows[k])
    return unfinished


__all__ = ["SLOW_PASSES", "ModelScan", "PassScan", "ScanReport", "choose_passes", "find_models", "scan",
           "scan_model"]
