"""surgery import FILE... [-o RECORD.json] [--batch N]: vendor-tool outputs copied back from a host → a record.

Recognised by content, not by name: ais_bench summary JSON (``*_summary.json``,
``sumary.json``) and printed summaries, legacy benchmark perf files and pure-inference
logs, trtexec logs (TensorRT 7 and 8), msprof ``op_summary``/``op_statistic`` CSVs,
AOE result JSON and AOE logs. The record is a normal run record, so ``surgery diff``
compares an imported NPU run with anything else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from surgery.tools.ascend import ais_bench, aoe, benchmark, msprof
from surgery.tools.runner import ToolOutputError
from surgery.tools.tensorrt import trtexec

from surgery import validate
from surgery.errors import UsageError
from surgery.outputs import Outputs
from surgery.records import PerfRecord, RunRecord
from surgery.validate import arg

from ._common import console, print_json, status

NAME = "import"
HELP = "turn outputs copied back from an NPU/GPU host (ais_bench, benchmark, trtexec, msprof, aoe) into a record"
KINDS = ("ais-bench-json", "ais-bench-log", "benchmark-perf-vision", "benchmark-pure-infer", "trtexec-log",
         "msprof-op-summary", "msprof-op-statistic", "aoe-result-json", "aoe-log")
_MAX_BYTES = 256 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="tool outputs: summary JSON, logs, perf files, CSVs")
    parser.add_argument("-o", "--output", metavar="RECORD.json",
                        help="the run record to write (default: imported.json, or the next free imported-N.json)")
    parser.add_argument("--batch", type=arg(validate.count, "--batch"), metavar="N",
                        help="the batch size, for outputs that do not say it")
    parser.add_argument("--kind", choices=KINDS, help="read every FILE as this kind instead of guessing")
    parser.add_argument("--model", metavar="NAME", help="the model name or path to put in the records")
    parser.add_argument("--run", metavar="DIR", help="a `surgery run --dry-run` folder: add these NPU results to "
                        "its run.json and re-render its report.html (sides told by the om names before_bsN/after_bsN)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON instead of a table")


@dataclass
class Imported:
    """What one file gave: perf rows, an op profile, AOE figures."""

    path: Path
    kind: str
    perf: list[PerfRecord] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    aoe: list[dict[str, Any]] = field(default_factory=list)


def sniff(path: Path, text: str) -> str:
    """The kind of a tool output, from its content (and, for ambiguous text, its name).

    Raises:
        UsageError: nothing recognisable.
    """
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except RecursionError:
            raise ToolOutputError(f"{path} is JSON nested too deeply to be a tool summary") from None
        except json.JSONDecodeError as exc:
            raise ToolOutputError(f"{path} looks like JSON but does not parse ({exc.msg} at line {exc.lineno}; "
                                  f"truncated?)") from None
        if isinstance(data, dict) and data.get("schema") == "surgery.record":
            raise UsageError(f"{path} is already a surgery record: give it to surgery diff directly")
        if isinstance(data, dict) and "NPU_compute_time" in data:
            return "ais-bench-json"
        if isinstance(data, dict) and ("OPAT" in data or "SGAT" in data):
            return "aoe-result-json"
        raise UsageError(f"{path}: a JSON file that is neither an ais_bench summary nor an AOE result")
    first = stripped.splitlines()[0] if stripped else ""
    csv_kind = msprof.sniff(first)
    if csv_kind == "op_summary":
        return "msprof-op-summary"
    if csv_kind == "op_statistic":
        return "msprof-op-statistic"
    if "NPU_compute_time" in text:
        return "ais-bench-log"
    if "[e2e] throughputRate" in text or "Interface throughputRate" in text:
        return "benchmark-perf-vision"
    if "ave_throughputRate" in text:
        return "benchmark-pure-infer"
    if "GPU Compute" in text or "TensorRT.trtexec" in text:
        return "trtexec-log"
    if "Performance improved by" in text or "aoe process finished" in text.lower():
        return "aoe-log"
    raise UsageError(f"{path}: not a recognised tool output (ais_bench, benchmark, trtexec, msprof or aoe); "
                     f"give --kind")


def _read(path: Path) -> str:
    if not path.exists():
        raise UsageError(f"file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder: give the files in it (e.g. {path}/*_summary.json)")
    if path.stat().st_size > _MAX_BYTES:
        raise UsageError(f"{path} is larger than {_MAX_BYTES >> 20} MiB: not a tool summary")
    try:
        return path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        raise ToolOutputError(f"{path} is not text (binary or a different encoding)") from None


def import_file(path: Path, *, kind: str | None = None, batch: int | None = None,
                model: str | None = None) -> Imported:
    """Parse one file into records.

    Raises:
        ToolOutputError: a corrupt or truncated output (never a guessed number).
        UsageError: an unrecognised file.
    """
    text = _read(path)
    kind = kind or sniff(path, text)
    where = str(path)
    out = Imported(path=path, kind=kind)
    readers: dict[str, Callable[[], None]] = {
        "ais-bench-json": lambda: out.perf.append(ais_bench.parse_summary_json(path, batch=batch, model=model)),
        "ais-bench-log": lambda: out.perf.append(
            ais_bench.parse_summary_text(text, batch=batch, model=model, source=where)),
        "benchmark-perf-vision": lambda: out.perf.append(
            benchmark.parse_perf_vision(text, source=where, batch=batch, model=model)),
        "benchmark-pure-infer": lambda: out.perf.append(
            benchmark.parse_pure_infer(text, batch=batch, source=where, model=model)),
        "trtexec-log": lambda: out.perf.append(trtexec.parse_output(text, batch=batch, source=where, model=model)),
        "msprof-op-summary": lambda: setattr(out, "profile", msprof.parse_op_summary(path, text).to_dict()),
        "msprof-op-statistic": lambda: setattr(out, "profile", msprof.parse_op_statistic(path, text).to_dict()),
        "aoe-result-json": lambda: _aoe_json(out, path, batch, model),
        "aoe-log": lambda: _aoe_log(out, text, where),
    }
    readers[kind]()
    return out


def _aoe_json(out: Imported, path: Path, batch: int | None, model: str | None) -> None:
    for result in aoe.parse_aoe_result_json(path):
        out.aoe.append(result.to_dict())
        out.perf.extend(result.perf_records(batch=batch, model=model))


def _aoe_log(out: Imported, text: str, where: str) -> None:
    found = aoe.parse_aoe_output(text)
    if not found:
        raise ToolOutputError(f"{where}: an AOE log without a 'Performance improved by' line (unfinished tuning?)")
    out.aoe.extend({"task": i.task, "percent": i.percent, "source": where} for i in found)


def run(args: argparse.Namespace) -> int:
    if args.run is not None:
        return _into_run(args)
    plan = Outputs()
    for name in args.files:
        validate.path(name, "FILE")
        plan.input(name, f"the input {name}")
    # an imported record names no model: a default name already taken moves to the next free one
    out, note = plan.record(args.output, "imported.json", model=None)
    imported: list[Imported] = []
    for name in args.files:
        path = Path(name)
        try:
            imported.append(import_file(path, kind=args.kind, batch=args.batch, model=args.model))
        except ToolOutputError as exc:
            msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            raise ToolOutputError(msg) from None
    record = RunRecord(command="import", argv=["surgery", *args.argv])
    targets = sorted({p.target for i in imported for p in i.perf})
    record.target = targets[0] if len(targets) == 1 else (",".join(targets) or None)
    record.perf = [p for i in imported for p in i.perf]
    profiles = [i.profile for i in imported if i.profile]
    aoe_figures = [a for i in imported for a in i.aoe]
    record.extra["imported"] = [{"path": str(i.path), "kind": i.kind, "sha256": _sha256(i.path)} for i in imported]
    if profiles:
        record.extra["op_profiles"] = profiles
    if aoe_figures:
        record.extra["aoe"] = aoe_figures
    record.reason = ""
    record.save(out)
    if args.json:
        print_json(record.to_dict())
        return 0
    if note:
        console.print(f"[yellow]notice:[/] {escape(note)}")
    console.print(_table(imported))
    console.print(f"record {escape(str(out))}")
    status(True, f"imported {len(imported)} file{'s' if len(imported) != 1 else ''}: {len(record.perf)} perf rows, "
                 f"{len(profiles)} op profiles")
    return 0


def _into_run(args: argparse.Namespace) -> int:
    """``--run DIR``: the records join the dry-run's run.json; its report is rendered again with them."""
    from surgery.run import attach

    if args.output is not None:
        raise UsageError("--run DIR writes into the run folder's run.json: drop -o")
    for name in args.files:
        validate.path(name, "FILE")
    pairs = []
    for name in args.files:
        path = Path(name)
        try:
            found = import_file(path, kind=args.kind, batch=args.batch, model=args.model)
        except ToolOutputError as exc:
            msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            raise ToolOutputError(msg) from None
        if not found.perf:
            raise UsageError(f"{path}: a {found.kind} holds no timings to add to a run's report")
        pairs.extend((perf, path) for perf in found.perf)
    result = attach(args.run, pairs, recipe_of=_recipe_of)
    if args.json:
        print_json(result.record.to_dict())
        return 0
    console.print(f"record {escape(str(result.record_path))}, report {escape(str(result.report))}")
    status(True, result.summary)
    return 0


def _recipe_of(name: str | None):
    if not name:
        return None
    from surgery.models import RECIPES

    return RECIPES.get(name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _table(imported: list[Imported]) -> Table:
    table = Table(title="imported")
    for column in ("file", "kind", "batch", "mean ms", "samples/s", "notes"):
        table.add_column(column, justify="right" if column in ("batch", "mean ms", "samples/s") else "left")
    for item in imported:
        for p in item.perf:
            mean = p.stats.get("mean")
            table.add_row(escape(item.path.name), item.kind, str(p.batch), f"{mean:.3f}" if mean else "-",
                          f"{p.throughput:.2f}" if p.throughput else "-",
                          escape(str(p.settings.get("aoe_job", "")) or ""))
        if item.profile:
            watched = item.profile.get("watched", {})
            notes = (", ".join(f"{k} ×{v['count']}" for k, v in watched.items())
                     or f"{len(item.profile['ops'])} op types")
            table.add_row(escape(item.path.name), item.kind, "-", "-", "-", escape(notes))
        if item.aoe and not item.perf:
            notes = ", ".join(f"{a.get('task') or a.get('job') or 'AOE'} +{a.get('percent')}%" for a in item.aoe)
            table.add_row(escape(item.path.name), item.kind, "-", "-", "-", escape(notes))
    return table
