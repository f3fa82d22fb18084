"""msprof: collect an NPU profile, and read its ``op_summary`` / ``op_statistic`` CSVs.

Collection is ``msprof --output=DIR --application="<script>" [--sys-hardware-mem=on ...]``
(or ``ais_bench --profiler 1``); older CANN then needs ``msprof.py import -dir`` and
``msprof.py export summary -dir``. The CSVs land in
``PROF_*/device_{id}/summary/op_summary_*.csv`` and ``op_statistic_*.csv`` (older:
``op_summary_0_1.csv``).

The readers fold either file into per-op-type counts and times, so the TransData,
StridedSliceD and Resize costs the guides chase are one lookup away.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runner import ToolOutputError

WATCHED = ("TransData", "StridedSliceD", "Resize", "ResizeBilinearV2", "ResizeNearestNeighborV2", "Transpose",
           "TransposeD", "Conv2D")
_TYPE_COLUMNS = ("OP Type", "Op Type", "op_type")
_DURATION_COLUMNS = ("Task Duration(us)", "Task Duration", "task_duration(us)")


@dataclass(frozen=True)
class MsprofOptions:
    """``msprof --output=DIR --application=SCRIPT`` with the guides' system switches."""

    output: str
    application: str
    switches: tuple[str, ...] = ("sys-hardware-mem",)
    msprof: str = "msprof"

    def argv(self) -> list[str]:
        """The exact command: ``msprof --output=DIR --application=SCRIPT --<switch>=on ...``."""
        return [self.msprof, f"--output={self.output}", f"--application={self.application}",
                *(f"--{s}=on" for s in self.switches)]


def export_argvs(prof_dir: str, python: str = "python3", script: str = "msprof.py") -> list[list[str]]:
    """The older CANN's two post-steps: ``msprof.py import -dir`` then ``export summary -dir``."""
    return [[python, script, "import", "-dir", prof_dir], [python, script, "export", "summary", "-dir", prof_dir]]


@dataclass
class OpTypeStat:
    """One op type's figures, in microseconds."""

    count: int = 0
    total_us: float = 0.0
    min_us: float | None = None
    max_us: float | None = None
    ratio_pct: float | None = None
    formats: dict[str, int] = field(default_factory=dict)  # "NCHW -> NC1HWC0": count (op_summary only)

    @property
    def avg_us(self) -> float:
        return self.total_us / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "total_us": self.total_us, "avg_us": self.avg_us}
        for key in ("min_us", "max_us", "ratio_pct"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.formats:
            out["formats"] = dict(self.formats)
        return out


@dataclass
class OpProfile:
    """Per-op-type counts and times from one msprof CSV.

    Attributes:
        kind: ``op_summary`` or ``op_statistic``.
        ops: op type → figures.
        iterations: inferences seen (distinct ``Infer ID``/``Iteration ID``, op_summary only), if known.
        source: the CSV read.
    """

    kind: str
    ops: dict[str, OpTypeStat]
    iterations: int | None = None
    source: str | None = None
    top: list[dict[str, Any]] = field(default_factory=list)  # slowest single ops (op_summary)

    @property
    def total_us(self) -> float:
        return sum(s.total_us for s in self.ops.values())

    def count(self, op_type: str) -> int:
        """How many ``op_type`` ops ran (0 if none)."""
        stat = self.ops.get(op_type)
        return stat.count if stat else 0

    def time_us(self, op_type: str) -> float:
        """Total time of ``op_type`` ops in µs (0 if none)."""
        stat = self.ops.get(op_type)
        return stat.total_us if stat else 0.0

    def watched(self) -> dict[str, dict[str, Any]]:
        """The op types the guides chase (TransData, StridedSliceD, Resize...) that appear here."""
        return {k: self.ops[k].to_dict() for k in WATCHED if k in self.ops}

    def to_dict(self) -> dict[str, Any]:
        ranked = sorted(self.ops.items(), key=lambda kv: -kv[1].total_us)
        return {"kind": self.kind, "source": self.source, "iterations": self.iterations,
                "total_us": self.total_us, "ops": {k: v.to_dict() for k, v in ranked},
                "watched": self.watched(), "top": self.top}


def _read_rows(source: str | os.PathLike | str, text: str | None = None) -> tuple[list[str], list[list[str]], str]:
    where = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")  # msprof writes a BOM on some versions
        except (OSError, UnicodeDecodeError) as exc:
            raise ToolOutputError(f"cannot read {where}: {exc}") from None
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:  # a field over csv's size limit, a NUL byte: not an msprof CSV
        raise ToolOutputError(f"{where} is not a readable CSV ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ToolOutputError(f"{where} is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for i, row in enumerate(body, 2):
        if len(row) < len(header):
            raise ToolOutputError(f"{where}:{i}: {len(row)} fields where the header has {len(header)} "
                                  f"(truncated file?)")
    return header, body, where


def _column(header: Sequence[str], names: Sequence[str], where: str, kind: str) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise ToolOutputError(f"{where}: no {names[0]!r} column: not an msprof {kind} CSV "
                          f"(columns: {', '.join(header[:8])}...)")


def _float(row: list[str], index: int, where: str, lineno: int, what: str) -> float:
    text = row[index].strip()
    try:
        value = float(text)
    except ValueError:
        raise ToolOutputError(f"{where}:{lineno}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ToolOutputError(f"{where}:{lineno}: {what} {text!r} is not a non-negative number")
    return value


def parse_op_summary(source: str | os.PathLike, text: str | None = None, top: int = 10) -> OpProfile:
    """Fold an ``op_summary_*.csv`` (one row per executed op) into per-op-type figures.

    TransData rows also count their ``Input Formats -> Output Formats`` pairs.

    Raises:
        ToolOutputError: unreadable, truncated, missing the OP Type / Task Duration columns,
            or a duration that is not a number.
    """
    header, body, where = _read_rows(source, text)
    type_col = _column(header, _TYPE_COLUMNS, where, "op_summary")
    dur_col = _column(header, _DURATION_COLUMNS, where, "op_summary")
    name_col = header.index("Op Name") if "Op Name" in header else None
    in_fmt = header.index("Input Formats") if "Input Formats" in header else None
    out_fmt = header.index("Output Formats") if "Output Formats" in header else None
    iter_col = next((header.index(c) for c in ("Infer ID", "Iteration ID") if c in header), None)
    ops: dict[str, OpTypeStat] = {}
    iterations: set[str] = set()
    slowest: list[tuple[float, dict[str, Any]]] = []
    for lineno, row in enumerate(body, 2):
        op_type = row[type_col].strip()
        if not op_type:
            raise ToolOutputError(f"{where}:{lineno}: empty OP Type")
        duration = _float(row, dur_col, where, lineno, header[dur_col])
        stat = ops.setdefault(op_type, OpTypeStat())
        stat.count += 1
        stat.total_us += duration
        stat.min_us = duration if stat.min_us is None else min(stat.min_us, duration)
        stat.max_us = duration if stat.max_us is None else max(stat.max_us, duration)
        if in_fmt is not None and out_fmt is not None and op_type == "TransData":
            pair = f"{row[in_fmt].strip()} -> {row[out_fmt].strip()}"
            stat.formats[pair] = stat.formats.get(pair, 0) + 1
        if iter_col is not None and row[iter_col].strip():
            iterations.add(row[iter_col].strip())
        slowest.append((duration, {"op": row[name_col].strip() if name_col is not None else "",
                                   "type": op_type, "duration_us": duration}))
    total = sum(s.total_us for s in ops.values())
    for stat in ops.values():
        stat.ratio_pct = 100.0 * stat.total_us / total if total else 0.0
    slowest.sort(key=lambda x: -x[0])
    return OpProfile(kind="op_summary", ops=ops, iterations=len(iterations) or None, source=where,
                     top=[d for _, d in slowest[:top]])


def parse_op_statistic(source: str | os.PathLike, text: str | None = None) -> OpProfile:
    """Read an ``op_statistic_*.csv`` (one row per op type and core type), summing over core types.

    Raises:
        ToolOutputError: unreadable, truncated, or missing the OP Type / Count / Total Time columns.
    """
    header, body, where = _read_rows(source, text)
    type_col = _column(header, _TYPE_COLUMNS, where, "op_statistic")
    count_col = _column(header, ("Count",), where, "op_statistic")
    total_col = _column(header, ("Total Time(us)", "Total Time"), where, "op_statistic")
    optional = {key: header.index(name) for key, name in (("min", "Min Time(us)"), ("max", "Max Time(us)"),
                                                          ("ratio", "Ratio(%)")) if name in header}
    ops: dict[str, OpTypeStat] = {}
    for lineno, row in enumerate(body, 2):
        op_type = row[type_col].strip()
        if not op_type:
            raise ToolOutputError(f"{where}:{lineno}: empty OP Type")
        count = _float(row, count_col, where, lineno, "Count")
        if count != int(count):
            raise ToolOutputError(f"{where}:{lineno}: Count {count} is not a whole number")
        stat = ops.setdefault(op_type, OpTypeStat())
        stat.count += int(count)
        stat.total_us += _float(row, total_col, where, lineno, header[total_col])
        if "min" in optional:
            value = _float(row, optional["min"], where, lineno, "Min Time(us)")
            stat.min_us = value if stat.min_us is None else min(stat.min_us, value)
        if "max" in optional:
            value = _float(row, optional["max"], where, lineno, "Max Time(us)")
            stat.max_us = value if stat.max_us is None else max(stat.max_us, value)
        if "ratio" in optional:
            stat.ratio_pct = (stat.ratio_pct or 0.0) + _float(row, optional["ratio"], where, lineno, "Ratio(%)")
    return OpProfile(kind="op_statistic", ops=ops, source=where)


def sniff(header_line: str) -> str | None:
    """``op_summary`` / ``op_statistic`` from a CSV's first line, or None."""
    try:
        cells = {c.strip().lstrip("\ufeff") for c in next(csv.reader([header_line]), [])}
    except csv.Error:  # a line no CSV writer makes (over csv's field limit, a NUL byte)
        return None
    if cells & set(_TYPE_COLUMNS) and cells & set(_DURATION_COLUMNS):
        return "op_summary"
    if cells & set(_TYPE_COLUMNS) and "Count" in cells:
        return "op_statistic"
    return None


def compare(before: OpProfile, after: OpProfile, op_types: Sequence[str] = WATCHED) -> dict[str, Mapping[str, Any]]:
    """Count and time of each watched op type, before vs after a rewrite."""
    out: dict[str, Mapping[str, Any]] = {}
    for op in op_types:
        if op in before.ops or op in after.ops:
            out[op] = {"count": (before.count(op), after.count(op)),
                       "total_us": (before.time_us(op), after.time_us(op))}
    return out
