"""The perf table: benchmark rows, and records side by side with significance.

Rows are batch sizes (keyed by target too when a record holds several targets);
each record contributes throughput, p50 and p99, and every record after the first its
speed-up over the first with a bootstrap confidence interval and a verdict. Optional
reference columns come from a zoo recipe's published numbers (the guides' 310 / 310P /
T4 columns). Renders as a rich Table, markdown, CSV or JSON-ready dicts.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.table import Table

from surgery.recipe import Recipe
from surgery.records import PerfRecord
from surgery.stats import DEFAULT_CONFIDENCE, FASTER, SLOWER, RatioCI, speedup_ci

NA = "n/a (no samples)"


@dataclass
class Cell:
    """One record's figures in a row, and (after the first) its speed-up over the first."""

    record: PerfRecord | None
    ratio: RatioCI | None = None
    plain_ratio: float | None = None  # throughput ratio when samples are missing (no interval)

    @property
    def verdict(self) -> str:
        if self.ratio is not None:
            return self.ratio.verdict
        return NA if self.plain_ratio is not None else ""


@dataclass
class Row:
    target: str | None
    batch: int
    cells: list[Cell]
    reference: dict[str, float | None] = field(default_factory=dict)


@dataclass
class PerfDiff:
    """Records side by side: rows by (target,) batch, a cell per record."""

    labels: list[str]
    rows: list[Row]
    by_target: bool
    targets: list[str | None] = field(default_factory=list)  # one per record, when rows are by batch only
    reference_devices: list[str] = field(default_factory=list)
    reference_name: str | None = None
    confidence: float = DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            cells = []
            for label, cell in zip(self.labels, row.cells, strict=True):
                rec = cell.record
                item: dict[str, Any] = {"label": label, "present": rec is not None}
                if rec is not None:
                    item.update(target=rec.target, effective_batch=rec.effective_batch, throughput=rec.throughput,
                                p50_ms=rec.stats.get("median"), p99_ms=rec.stats.get("p99"),
                                iterations=rec.iterations, error=rec.error)
                if cell.ratio is not None:
                    item["speedup"] = cell.ratio.to_dict()
                elif cell.plain_ratio is not None:
                    item["speedup"] = {"ratio": cell.plain_ratio, "low": None, "high": None, "verdict": NA}
                cells.append(item)
            rows.append({"target": row.target, "batch": row.batch, "cells": cells, "reference": row.reference})
        return {"labels": self.labels, "by_target": self.by_target, "confidence": self.confidence,
                "reference": {"name": self.reference_name, "devices": self.reference_devices}, "rows": rows}


def _targets(records: Sequence[PerfRecord]) -> list[str]:
    return list(dict.fromkeys(r.target for r in records))


def compare(sources: Sequence[tuple[str, Sequence[PerfRecord]]], *, reference: Recipe | None = None,
            confidence: float = DEFAULT_CONFIDENCE, min_effect: float = 0.0) -> PerfDiff:
    """Line records up by batch (and target) and test each against the first.

    Args:
        sources: (label, records) per run, the first being the reference of the ratios.
        reference: a zoo recipe whose published throughput adds reference columns.
        confidence: level of the speed-up intervals.
        min_effect: relative changes below this are never called significant.
    """
    by_target = any(len(_targets(recs)) > 1 for _, recs in sources)
    keys: list[tuple[str | None, int]] = []
    maps: list[dict[tuple[str | None, int], PerfRecord]] = []
    for _, recs in sources:
        m: dict[tuple[str | None, int], PerfRecord] = {}
        for r in recs:
            key = (r.target if by_target else None, r.batch)
            m.setdefault(key, r)
            if key not in keys:
                keys.append(key)
        maps.append(m)
    order = {t: i for i, t in enumerate(dict.fromkeys(k[0] for k in keys))}
    keys.sort(key=lambda k: (order[k[0]], k[1]))
    devices, published = _published(reference)
    rows = []
    for key in keys:
        cells = [Cell(record=m.get(key)) for m in maps]
        first = cells[0].record
        for cell in cells[1:]:
            _fill_ratio(first, cell, confidence, min_effect)
        ref = {d: published[d].get(key[1]) for d in devices}
        rows.append(Row(target=key[0], batch=key[1], cells=cells, reference=ref))
    targets = [None if by_target else (_targets(recs) or [None])[0] for _, recs in sources]
    return PerfDiff(labels=[label for label, _ in sources], rows=rows, by_target=by_target, targets=targets,
                    reference_devices=devices, reference_name=reference.name if reference else None,
                    confidence=confidence)


def _fill_ratio(first: PerfRecord | None, cell: Cell, confidence: float, min_effect: float) -> None:
    rec = cell.record
    if first is None or rec is None or not first.ok or not rec.ok:
        return
    if first.latencies_ms and rec.latencies_ms:
        cell.ratio = speedup_ci(first.latencies_ms, rec.latencies_ms, batch_a=first.effective_batch or first.batch,
                                batch_b=rec.effective_batch or rec.batch, confidence=confidence,
                                min_effect=min_effect)
    elif first.throughput and rec.throughput:
        cell.plain_ratio = rec.throughput / first.throughput


def _published(recipe: Recipe | None) -> tuple[list[str], dict[str, dict[int, float]]]:
    if recipe is None:
        return [], {}
    table: dict[str, dict[int, float]] = {}
    for device, per_batch in recipe.published.throughput.items():
        table[str(device)] = {int(b): float(v) for b, v in per_batch.items() if v is not None}
    return list(table), table


# ---------------------------------------------------------------------------
# formatting


def fmt_fps(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.1f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def fmt_ratio(cell: Cell) -> str:
    if cell.ratio is not None:
        return f"×{cell.ratio.ratio:.3f} [{cell.ratio.low:.3f}, {cell.ratio.high:.3f}]"
    if cell.plain_ratio is not None:
        return f"×{cell.plain_ratio:.3f}"
    return "—"


def _short_error(error: str, limit: int = 60) -> str:
    text = " ".join(error.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_grid(diff: PerfDiff) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, text rows and footnotes of the side-by-side table (for the rich and markdown renderers).

    A failed cell shows ``failed [n]``; footnote n holds the record's label, batch and error.
    """
    pct = f"{diff.confidence * 100:g}%"
    headers = (["target"] if diff.by_target else []) + ["batch"]
    first = diff.labels[0]
    distinct_targets = len(set(diff.targets)) > 1
    for k, label in enumerate(diff.labels):
        target = diff.targets[k] if k < len(diff.targets) else None
        name = f"{label} ({target})" if target and distinct_targets else label
        headers += [f"{name} fps", f"{name} p50 ms", f"{name} p99 ms"]
        if k:
            headers += [f"{label} vs {first} ({pct} CI)", f"{label} verdict"]
    headers += [f"{d} fps" for d in diff.reference_devices]
    rows: list[list[str]] = []
    notes: list[str] = []
    for row in diff.rows:
        line = ([row.target or ""] if diff.by_target else []) + [str(row.batch)]
        for k, cell in enumerate(row.cells):
            rec = cell.record
            if rec is None:
                line += ["—", "—", "—"]
            elif not rec.ok:
                notes.append(f"[{len(notes) + 1}] {diff.labels[k]}, batch {row.batch}: {rec.error}")
                line += [f"failed [{len(notes)}]", "—", "—"]
            else:
                fps = fmt_fps(rec.throughput)
                if rec.effective_batch and rec.effective_batch != rec.batch:
                    fps += f" (ran batch {rec.effective_batch})"
                line += [fps, fmt_ms(rec.stats.get("median")), fmt_ms(rec.stats.get("p99"))]
            if k:
                line += [fmt_ratio(cell), cell.verdict or "—"]
        line += [fmt_fps(row.reference.get(d)) for d in diff.reference_devices]
        rows.append(line)
    return headers, rows, notes


def diff_rich(diff: PerfDiff, title: str | None = None) -> Table:
    """The side-by-side table as a rich Table (verdicts coloured)."""
    from rich.markup import escape

    headers, rows, notes = diff_grid(diff)
    table = Table(title=title or "perf: " + " vs ".join(diff.labels),
                  caption="\n".join(escape(n) for n in notes) or None, caption_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h in ("target",) or h.endswith("verdict") else "right")
    for line in rows:
        table.add_row(*[_style_cell(x) for x in line])
    return table


def _style_cell(text: str) -> str:
    from rich.markup import escape

    if text == FASTER:
        return f"[bold green]{text}[/]"
    if text in (SLOWER,) or text.startswith("failed"):
        return f"[bold red]{escape(text)}[/]"
    return escape(text)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    def esc(x: str) -> str:
        return x.replace("|", "\\|")

    align = ["---" if h in ("target",) or h.endswith("verdict") else "---:" for h in headers]
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def diff_markdown(diff: PerfDiff) -> str:
    """The side-by-side table as markdown, footnotes (errors) below it."""
    headers, rows, notes = diff_grid(diff)
    return markdown(headers, rows) + "".join(f"\n{n}\n" for n in notes)


def diff_csv(diff: PerfDiff) -> str:
    """One line per row with raw numbers (no thousands separators, full errors)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    headers = ["target", "batch"]
    for k, label in enumerate(diff.labels):
        headers += [f"{label}_{x}" for x in ("target", "effective_batch", "throughput", "p50_ms", "p99_ms", "error")]
        if k:
            headers += [f"{label}_{x}" for x in ("speedup", "ci_low", "ci_high", "verdict")]
    headers += [f"ref_{d}_fps" for d in diff.reference_devices]
    w.writerow(headers)
    for row in diff.rows:
        line: list[Any] = [row.target or "", row.batch]
        for k, cell in enumerate(row.cells):
            rec = cell.record
            if rec is None:
                line += ["", "", "", "", "", "missing"]
            else:
                line += [rec.target, rec.effective_batch if rec.ok else "", _num(rec.throughput),
                         _num(rec.stats.get("median")), _num(rec.stats.get("p99")), rec.error or ""]
            if k:
                if cell.ratio is not None:
                    line += [_num(cell.ratio.ratio), _num(cell.ratio.low), _num(cell.ratio.high), cell.ratio.verdict]
                elif cell.plain_ratio is not None:
                    line += [_num(cell.plain_ratio), "", "", NA]
                else:
                    line += ["", "", "", ""]
        line += [_num(row.reference.get(d)) for d in diff.reference_devices]
        w.writerow(line)
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


# ---------------------------------------------------------------------------
# a single run's table (surgery bench)


def bench_grid(records: Sequence[PerfRecord], reference: Recipe | None = None
               ) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, rows and footnotes of one run: per batch, the batch it ran, throughput, latency in ms.

    A failed batch shows ``failed [n]`` and its error as footnote n (errors are long; cells are not).
    """
    devices, published = _published(reference)
    multi = len(_targets(records)) > 1
    headers = (["target"] if multi else []) + ["batch", "ran", "samples/s", "mean", "p50", "p90", "p99", "std",
                                               "iters"]
    headers += [f"{d} fps" for d in devices]
    rows, notes = [], []
    for r in records:
        line = ([r.target] if multi else []) + [str(r.batch)]
        if r.ok:
            s = r.stats
            line += [str(r.effective_batch), fmt_fps(r.throughput)] + [
                fmt_ms(s.get(k)) for k in ("mean", "median", "p90", "p99", "std")] + [str(r.iterations)]
        else:
            notes.append(f"[{len(notes) + 1}] batch {r.batch}: {r.error}")
            line += ["—", f"failed [{len(notes)}]"] + ["—"] * 6
        line += [fmt_fps(published[d].get(r.batch)) for d in devices]
        rows.append(line)
    return headers, rows, notes


def bench_rich(records: Sequence[PerfRecord], title: str = "perf", reference: Recipe | None = None) -> Table:
    """The guides' perf table for one run, as a rich Table (latencies in ms; errors as footnotes in the caption)."""
    from rich.markup import escape

    headers, rows, notes = bench_grid(records, reference)
    # a light box: the guides' nine columns fit an 80-column terminal without cutting digits
    table = Table(title=f"{title} (latency in ms)", caption="\n".join(escape(n) for n in notes) or None,
                  caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for h in headers:
        table.add_column(h, justify="left" if h == "target" else "right", no_wrap=True)
    for line in rows:
        table.add_row(*[f"[red]{escape(x)}[/]" if x.startswith("failed") else escape(x) for x in line])
    return table


def bench_markdown(records: Sequence[PerfRecord], reference: Recipe | None = None) -> str:
    """The perf table of one run as markdown, footnotes below it."""
    headers, rows, notes = bench_grid(records, reference)
    return markdown(headers, rows) + "".join(f"\n{n}\n" for n in notes)
