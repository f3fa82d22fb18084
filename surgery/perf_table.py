"""The perf table: benchmark rows, and records side by side with significance.

Rows are batch sizes (keyed by target too when a record holds several targets);
each record contributes throughput, p50 and p99, and every record after the first its
speed-up over the first with a confidence interval and a verdict: the paired interval
for records measured together, else the unpaired one widened by the host's between-run
noise and marked ``unpaired`` (see :mod:`surgery.pairing`). Optional reference columns
come from a zoo recipe's published numbers (the guides' 310 / 310P / T4 columns), marked as
the guide's figures, per card or per device, with the per-sample latency they imply beside
each record's own latency per sample. Renders as a rich Table, markdown, CSV or JSON-ready
dicts.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.table import Table

from surgery.errors import UnknownNameError, UsageError
from surgery.noise import DEFAULT, HostNoise
from surgery.pairing import speedup
from surgery.recipe import Recipe
from surgery.records import PerfRecord
from surgery.stats import DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT, FASTER, SLOWER, RatioCI, min_effect_text
from surgery.targets.measure import STOP_MAX_TIME

NA = "n/a (no samples)"
GUIDE = "guide"  # marks published reference columns: the seed guide's figures, not measurements


@dataclass(frozen=True)
class ReferenceColumn:
    """One device column of a guide's published throughput.

    Attributes:
        device: the guide's column name ("310", "310P", "T4").
        fps: batch → samples/s as published.
        per_card: devices per card when the figures are per card (a 310 card: 4), else 1.
    """

    device: str
    fps: dict[int, float]
    per_card: int = 1

    @property
    def unit(self) -> str:
        return "card" if self.per_card > 1 else "device"

    @property
    def header(self) -> str:
        return f"{self.device} fps/{self.unit} ({GUIDE})"

    @property
    def latency_header(self) -> str:
        return f"{self.device} ms/sample ({GUIDE})"

    def ms_per_sample(self, batch: int) -> float | None:
        """The per-sample latency of one device the figure implies (the guides' ``ave_latency``)."""
        fps = self.fps.get(batch)
        return 1000.0 * self.per_card / fps if fps else None


def reference_columns(recipe: Recipe | None) -> list[ReferenceColumn]:
    """The recipe's published throughput columns, with their per-card / per-device basis."""
    if recipe is None:
        return []
    per_card = getattr(recipe.published, "per_card", {}) or {}
    return [ReferenceColumn(device=str(d), fps={int(b): float(v) for b, v in per_batch.items() if v is not None},
                            per_card=int(per_card.get(d, 1)))
            for d, per_batch in recipe.published.throughput.items()]


def pick_reference(recipes: Mapping[str, Recipe], asked: str | None, measured: Sequence[str | None], *,
                   allow_other: bool = False) -> Recipe | None:
    """The recipe whose published figures go beside the records.

    Args:
        recipes: the zoo's recipes by name.
        asked: ``--reference ZOO``, if given.
        measured: the zoo model each record is of (None for a plain file).
        allow_other: ``--reference-any``: ``asked`` may be another zoo model than the measured one.

    Without ``asked``: the recipe of the one zoo model the records name, if exactly one.

    Raises:
        UnknownNameError: ``asked`` is not a zoo model.
        UsageError: ``asked`` is another zoo model than the one measured (unless ``allow_other``).
    """
    names = {m for m in measured if m}
    if asked is None:
        return recipes.get(names.pop()) if len(names) == 1 else None
    if asked not in recipes:
        raise UnknownNameError("zoo model", asked, recipes)
    others = sorted(names - {asked})
    if others and not allow_other:
        raise UsageError(f"--reference {asked}: the records are of zoo model {others[0]}; another model's "
                         "published figures compare nothing (add --reference-any to show them anyway)")
    return recipes[asked]


def reference_notes(columns: Sequence[ReferenceColumn], name: str | None) -> list[str]:
    """What the reference columns are, for a table's footnotes."""
    if not columns:
        return []
    cards = [f"{c.device}: per card of {c.per_card} devices (x{c.per_card} the per-device rate)"
             for c in columns if c.per_card > 1]
    note = (f"({GUIDE}) columns: figures published by the {name or 'zoo'} seed guide, not measured here; "
            "fps per device unless marked /card")
    note += ("; " + "; ".join(cards)) if cards else ""
    note += "; ms/sample = one device's latency per sample (1000 / per-device fps), beside each record's p50 / batch"
    return [note]


def ms_per_sample(rec: PerfRecord) -> float | None:
    """A record's latency per sample: p50 (else the mean, all some tools report) of one call over the batch it ran.

    Imported records hold per-call latencies (ais_bench, trtexec: one call of the whole
    batch); the guides quote per-sample latency, so this is what stands beside them.
    """
    latency = (rec.stats.get("median") or rec.stats.get("mean")) if rec.ok else None
    batch = rec.effective_batch or rec.batch
    return latency / batch if latency is not None and batch else None


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

    @property
    def below_min_effect(self) -> bool:
        return self.ratio is not None and self.ratio.below_min_effect


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
    reference: list[ReferenceColumn] = field(default_factory=list)
    reference_name: str | None = None
    confidence: float = DEFAULT_CONFIDENCE
    noise: list[HostNoise] = field(default_factory=list)  # one per record: its host's between-run noise
    min_effect: float = DEFAULT_MIN_EFFECT  # the margin a verdict's interval must clear

    @property
    def reference_devices(self) -> list[str]:
        return [c.device for c in self.reference]

    @property
    def unpaired_noise(self) -> HostNoise | None:
        """The noise the unpaired cells were widened by (the widest), or None when every cell is paired."""
        levels = [self._noise_for(k) for row in self.rows for k, c in enumerate(row.cells)
                  if c.ratio is not None and not c.ratio.paired]
        return max(levels, key=lambda n: n.sigma) if levels else None

    def _noise_for(self, k: int) -> HostNoise:
        if not self.noise:
            return DEFAULT
        return max(self.noise[0], self.noise[min(k, len(self.noise) - 1)], key=lambda n: n.sigma)

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
                                ms_per_sample=ms_per_sample(rec), iterations=rec.iterations, error=rec.error,
                                stop=rec.stop, half_width=rec.half_width)
                if cell.ratio is not None:
                    item["speedup"] = cell.ratio.to_dict()
                elif cell.plain_ratio is not None:
                    item["speedup"] = {"ratio": cell.plain_ratio, "low": None, "high": None, "verdict": NA}
                cells.append(item)
            rows.append({"target": row.target, "batch": row.batch, "cells": cells, "reference": row.reference})
        reference = {"name": self.reference_name, "devices": self.reference_devices, "published": True,
                     "per_card": {c.device: c.per_card for c in self.reference if c.per_card > 1}}
        return {"labels": self.labels, "by_target": self.by_target, "confidence": self.confidence,
                "min_effect": self.min_effect, "reference": reference, "rows": rows,
                "noise": [{"sigma": n.sigma, "source": n.source} for n in self.noise]}


def _targets(records: Sequence[PerfRecord]) -> list[str]:
    return list(dict.fromkeys(r.target for r in records))


def compare(sources: Sequence[tuple[str, Sequence[PerfRecord]]], *, reference: Recipe | None = None,
            confidence: float = DEFAULT_CONFIDENCE, min_effect: float = DEFAULT_MIN_EFFECT,
            noise: Sequence[HostNoise] | None = None) -> PerfDiff:
    """Line records up by batch (and target) and test each against the first.

    Args:
        sources: (label, records) per run, the first being the reference of the ratios.
        reference: a zoo recipe whose published throughput adds reference columns.
        confidence: level of the speed-up intervals.
        min_effect: relative changes below this are never called significant.
        noise: each source's host between-run noise, for cells measured apart (default: the
            stated default of :mod:`surgery.noise`); a pair uses the larger of its two.
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
    columns = reference_columns(reference)
    levels = list(noise) if noise else [DEFAULT] * len(sources)
    diff = PerfDiff(labels=[label for label, _ in sources], rows=[], by_target=by_target,
                    targets=[None if by_target else (_targets(recs) or [None])[0] for _, recs in sources],
                    reference=columns, reference_name=reference.name if reference else None,
                    confidence=confidence, noise=levels, min_effect=min_effect)
    for key in keys:
        cells = [Cell(record=m.get(key)) for m in maps]
        first = cells[0].record
        for k, cell in enumerate(cells[1:], start=1):
            _fill_ratio(first, cell, confidence, min_effect, diff._noise_for(k))
        ref = {c.device: c.fps.get(key[1]) for c in columns}
        diff.rows.append(Row(target=key[0], batch=key[1], cells=cells, reference=ref))
    return diff


def _fill_ratio(first: PerfRecord | None, cell: Cell, confidence: float, min_effect: float,
                noise: HostNoise) -> None:
    rec = cell.record
    if first is None or rec is None or not first.ok or not rec.ok:
        return
    cell.ratio = speedup(first, rec, confidence=confidence, min_effect=min_effect, noise=noise)
    if cell.ratio is None and first.throughput and rec.throughput:
        cell.plain_ratio = rec.throughput / first.throughput


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
        return cell.ratio.describe()
    if cell.plain_ratio is not None:
        return f"×{cell.plain_ratio:.3f}"
    return "—"


def diff_grid(diff: PerfDiff) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, text rows and footnotes of the side-by-side table (for the rich and markdown renderers).

    A failed cell shows ``failed [n]``; footnote n holds the record's label, batch and error.
    Unpaired intervals say ``unpaired`` and a footnote gives the noise they include.
    """
    pct = f"{diff.confidence * 100:g}%"
    headers = (["target"] if diff.by_target else []) + ["batch"]
    first = diff.labels[0]
    distinct_targets = len(set(diff.targets)) > 1
    with_reference = bool(diff.reference)
    for k, label in enumerate(diff.labels):
        target = diff.targets[k] if k < len(diff.targets) else None
        name = f"{label} ({target})" if target and distinct_targets else label
        headers += [f"{name} fps", f"{name} p50 ms", f"{name} p99 ms"]
        if with_reference:
            headers.append(f"{name} ms/sample")
        if k:
            headers += [f"{label} vs {first} ({pct} CI)", f"{label} verdict"]
    for c in diff.reference:
        headers += [c.header, c.latency_header]
    rows: list[list[str]] = []
    notes: list[str] = []
    margin = False
    for row in diff.rows:
        line = ([row.target or ""] if diff.by_target else []) + [str(row.batch)]
        for k, cell in enumerate(row.cells):
            rec = cell.record
            if rec is None:
                line += ["—", "—", "—"] + (["—"] if with_reference else [])
            elif not rec.ok:
                notes.append(f"[{len(notes) + 1}] {diff.labels[k]}, batch {row.batch}: {rec.error}")
                line += [f"failed [{len(notes)}]", "—", "—"] + (["—"] if with_reference else [])
            else:
                fps = fmt_fps(rec.throughput)
                if rec.effective_batch and rec.effective_batch != rec.batch:
                    fps += f" (ran batch {rec.effective_batch})"
                line += [fps, fmt_ms(rec.stats.get("median")), fmt_ms(rec.stats.get("p99"))]
                if with_reference:
                    line.append(fmt_ms(ms_per_sample(rec)))
            if k:
                margin = margin or cell.below_min_effect
                line += [fmt_ratio(cell), (cell.verdict or "—") + (" (< min effect)" if cell.below_min_effect else "")]
        for c in diff.reference:
            line += [fmt_fps(row.reference.get(c.device)), fmt_ms(c.ms_per_sample(row.batch))]
        rows.append(line)
    if margin:
        notes.append(f"(< min effect): the interval {min_effect_text(diff.min_effect)}")
    unpaired = diff.unpaired_noise
    if unpaired is not None:
        notes.append(f"unpaired: measured apart, so the interval includes the host's between-run noise "
                     f"{unpaired.describe()}; bench the models together for a paired interval")
    notes += reference_notes(diff.reference, diff.reference_name)
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
    """The side-by-side table as markdown, footnotes (errors, pairing, references) below it."""
    headers, rows, notes = diff_grid(diff)
    return markdown(headers, rows) + "".join(f"\n{n}\n" for n in notes)


def diff_csv(diff: PerfDiff) -> str:
    """One line per row with raw numbers (no thousands separators, full errors)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    headers = ["target", "batch"]
    for k, label in enumerate(diff.labels):
        headers += [f"{label}_{x}" for x in ("target", "effective_batch", "throughput", "p50_ms", "p99_ms",
                                             "ms_per_sample", "error")]
        if k:
            headers += [f"{label}_{x}" for x in ("speedup", "ci_low", "ci_high", "verdict", "paired")]
    for c in diff.reference:
        headers += [f"ref_{c.device}_fps", f"ref_{c.device}_per", f"ref_{c.device}_ms_per_sample"]
    w.writerow(headers)
    for row in diff.rows:
        line: list[Any] = [row.target or "", row.batch]
        for k, cell in enumerate(row.cells):
            rec = cell.record
            if rec is None:
                line += ["", "", "", "", "", "", "missing"]
            else:
                line += [rec.target, rec.effective_batch if rec.ok else "", _num(rec.throughput),
                         _num(rec.stats.get("median")), _num(rec.stats.get("p99")), _num(ms_per_sample(rec)),
                         rec.error or ""]
            if k:
                if cell.ratio is not None:
                    line += [_num(cell.ratio.ratio), _num(cell.ratio.low), _num(cell.ratio.high), cell.ratio.verdict,
                             "yes" if cell.ratio.paired else "no"]
                elif cell.plain_ratio is not None:
                    line += [_num(cell.plain_ratio), "", "", NA, ""]
                else:
                    line += ["", "", "", "", ""]
        for c in diff.reference:
            line += [_num(row.reference.get(c.device)), c.unit, _num(c.ms_per_sample(row.batch))]
        w.writerow(line)
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


# ---------------------------------------------------------------------------
# a single run's table (surgery bench)


def fmt_precision(rec: PerfRecord, goal: float | None = None) -> str:
    """The half-width the measurement reached, ``±1.2%``, with ``*`` when it stopped short of ``goal``."""
    if rec.half_width is None or not math.isfinite(rec.half_width):
        return "—"
    short = goal is not None and rec.stop == STOP_MAX_TIME and rec.half_width > goal
    return f"±{rec.half_width * 100:.1f}%" + ("*" if short else "")


def bench_grid(records: Sequence[PerfRecord], reference: Recipe | None = None, goal: float | None = None
               ) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, rows and footnotes of one run: per batch, the batch it ran, throughput, latency in ms, precision.

    A failed batch shows ``failed [n]`` and its error as footnote n (errors are long; cells are not).
    ``±`` is the half-width of the interval of the median the measurement reached; ``*`` marks a
    batch that stopped at the time cap short of ``goal``.
    """
    columns = reference_columns(reference)
    multi = len(_targets(records)) > 1
    headers = (["target"] if multi else []) + ["batch", "ran", "samples/s", "mean", "p50", "p90", "p99", "std",
                                               "±", "iters"]
    if columns:
        headers.append("ms/sample")
    for c in columns:
        headers += [c.header, c.latency_header]
    rows, notes = [], []
    short = False
    for r in records:
        line = ([r.target] if multi else []) + [str(r.batch)]
        if r.ok:
            s = r.stats
            precision = fmt_precision(r, goal)
            short = short or precision.endswith("*")
            line += [str(r.effective_batch), fmt_fps(r.throughput)] + [
                fmt_ms(s.get(k)) for k in ("mean", "median", "p90", "p99", "std")] + [precision, str(r.iterations)]
            if columns:
                line.append(fmt_ms(ms_per_sample(r)))
        else:
            notes.append(f"[{len(notes) + 1}] batch {r.batch}: {r.error}")
            line += ["—", f"failed [{len(notes)}]"] + ["—"] * 7 + (["—"] if columns else [])
        for c in columns:
            line += [fmt_fps(c.fps.get(r.batch)), fmt_ms(c.ms_per_sample(r.batch))]
        rows.append(line)
    if short and goal is not None:
        notes.append(f"* stopped at --max-time short of the ±{goal * 100:g}% goal")
    notes += reference_notes(columns, reference.name if reference else None)
    return headers, rows, notes


def bench_rich(records: Sequence[PerfRecord], title: str = "perf", reference: Recipe | None = None,
               goal: float | None = None) -> Table:
    """The guides' perf table for one run, as a rich Table (latencies in ms; notes in the caption)."""
    from rich.markup import escape

    headers, rows, notes = bench_grid(records, reference, goal)
    # a light box: the guides' columns fit an 80-column terminal without cutting digits
    table = Table(title=f"{title} (latency in ms)", caption="\n".join(escape(n) for n in notes) or None,
                  caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for h in headers:
        table.add_column(h, justify="left" if h == "target" else "right", no_wrap=True)
    for line in rows:
        table.add_row(*[f"[red]{escape(x)}[/]" if x.startswith("failed") else escape(x) for x in line])
    return table


def bench_markdown(records: Sequence[PerfRecord], reference: Recipe | None = None, goal: float | None = None) -> str:
    """The perf table of one run as markdown, footnotes below it."""
    headers, rows, notes = bench_grid(records, reference, goal)
    return markdown(headers, rows) + "".join(f"\n{n}\n" for n in notes)
