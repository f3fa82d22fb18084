"""``report.html``: one self-contained file for one run, before vs after.

Everything the page needs is inside it: inline CSS, plots drawn by matplotlib as inline
SVG, no scripts or fonts fetched at view time (the page is opened on air-gapped NPU hosts
and attached to tickets). A few lines of inline script check, on load, that every section
and plot rendered and record any script error in ``data-*`` attributes of ``<body>``, so a
headless browser's DOM dump tells a test whether the page really rendered.

The page is built from plain data (:class:`ReportData`), which ``surgery run`` fills from
its records; nothing here measures or reads files.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from surgery.stats import interval_text

SECTIONS = ("summary", "perf", "plots", "passes", "ops", "eval", "provenance")


@dataclass
class PerfRow:
    """One batch size: before and after, the paired speed-up, and the guide's published figures.

    Attributes:
        batch: the batch size asked for.
        before_fps, after_fps: samples/s (None: that side failed, ``before_error`` / ``after_error`` say why).
        ratio, low, high: the paired speed-up of after over before and its interval (None: not compared).
        verdict: ``faster``, ``slower``, ``no significant change`` or why there is none.
        paired: whether before and after were measured together (interleaved in one process).
        published: device column → the guide's published samples/s (None where it published none).
        before_ms, after_ms: latency samples per call, for the distribution plot.
    """

    batch: int
    before_fps: float | None = None
    after_fps: float | None = None
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    verdict: str = ""
    paired: bool = True
    published: dict[str, float | None] = field(default_factory=dict)
    before_error: str | None = None
    after_error: str | None = None
    before_ms: list[float] = field(default_factory=list)
    after_ms: list[float] = field(default_factory=list)


@dataclass
class PassRow:
    """One pass of the run: what it matched and changed, its verification, and whether it was kept."""

    name: str
    exact: bool
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    verification: str = ""  # e.g. "verified", "NOT VERIFIED: why", "failed: why"
    parity: str = ""  # e.g. "max abs 2.1e-06, cos 1.000000"
    fidelity: str = ""  # e.g. "mask IoU vs before 0.971"
    decision: str = "kept"  # kept | reverted | failed
    why: str = ""


@dataclass
class MetricRow:
    """One evaluation figure before and after (and the guide's published value, if any)."""

    metric: str
    before: float | None
    after: float | None
    published: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class ReportData:
    """Everything the page shows."""

    title: str
    model: str
    target: str
    status: str  # the closing line, e.g. "PASSED | ..."
    created: str
    perf: list[PerfRow] = field(default_factory=list)
    passes: list[PassRow] = field(default_factory=list)
    op_counts_before: dict[str, int] = field(default_factory=dict)
    op_counts_after: dict[str, int] = field(default_factory=dict)
    metrics: list[MetricRow] = field(default_factory=list)
    eval_note: str = ""  # e.g. "generated data: these figures are not accuracy"
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # vendor commands run, or planned
    bisection: str = ""
    published_basis: dict[str, str] = field(default_factory=dict)  # device → "per card of 4 devices"


def render(data: ReportData) -> str:
    """The whole page as one HTML string."""
    body = [
        _summary(data),
        _perf(data),
        _plots(data),
        _passes(data),
        _ops(data),
        _eval(data),
        _provenance(data),
    ]
    return _PAGE.format(title=_e(data.title), css=_CSS, body="\n".join(body), check=_CHECK,
                        sections=",".join(SECTIONS))


# -- sections ---------------------------------------------------------------


def _section(key: str, title: str, inner: str) -> str:
    return f'<section id="{key}" data-section="{key}"><h2>{_e(title)}</h2>\n{inner}\n</section>'


def _summary(d: ReportData) -> str:
    ok = d.status.startswith("PASSED")
    notes = "".join(f"<li>{_e(n)}</li>" for n in d.notes)
    bis = f'<p class="warn"><b>Bisection:</b> {_e(d.bisection)}</p>' if d.bisection else ""
    inner = (f'<p class="status {"ok" if ok else "bad"}">{_e(d.status)}</p>'
             f"<p>model <b>{_e(d.model)}</b> on <b>{_e(d.target)}</b>, {_e(d.created)}</p>{bis}"
             + (f"<ul>{notes}</ul>" if notes else ""))
    return _section("summary", "Summary", inner)


def _perf(d: ReportData) -> str:
    devices = list(dict.fromkeys(k for r in d.perf for k in r.published))
    head = ["batch", "before (samples/s)", "after (samples/s)", "after / before (95% CI)", "verdict"]
    head += [f"{dev} (published)" for dev in devices]
    rows = []
    for r in d.perf:
        ci = "—"
        if r.ratio is not None:
            ci = f"×{r.ratio:.3f} {interval_text(r.low, r.high)}"
        verdict = r.verdict + ("" if r.paired or not r.verdict else " (unpaired)")
        cls = {"faster": "ok", "slower": "bad"}.get(r.verdict, "")
        cells = [str(r.batch), _fps(r.before_fps, r.before_error), _fps(r.after_fps, r.after_error), ci,
                 f'<span class="{cls}">{_e(verdict or "—")}</span>']
        cells += [_fps(r.published.get(dev)) if r.published.get(dev) is not None else
                  '<span class="dim">no reference</span>' for dev in devices]
        rows.append(cells)
    basis = "".join(f" {_e(dev)}: {_e(text)}." for dev, text in d.published_basis.items())
    foot = ('<p class="dim">Published columns are the figures the porting guide printed for its own hardware, '
            f"not measurements of this run.{basis}</p>" if devices else "")
    return _section("perf", "Performance", _table(head, rows, raw=True) + foot if d.perf else
                    "<p>No benchmark in this run.</p>")


def _plots(d: ReportData) -> str:
    figures = []
    if any(r.before_fps or r.after_fps for r in d.perf):
        figures.append(("throughput", "Throughput against batch size", _throughput_svg(d.perf)))
    if any(r.before_ms or r.after_ms for r in d.perf):
        figures.append(("latency", "Latency distributions", _latency_svg(d.perf)))
    metric_rows = [m for m in d.metrics if _plottable(m)]
    if metric_rows:
        figures.append(("accuracy", "Evaluation before and after", _metrics_svg(metric_rows)))
    if not figures:
        return _section("plots", "Plots", "<p>Nothing to plot: no benchmark or evaluation in this run.</p>")
    inner = "".join(f'<figure data-plot="{key}">{svg}<figcaption>{_e(cap)}</figcaption></figure>'
                    for key, cap, svg in figures)
    return _section("plots", "Plots", inner)


def _passes(d: ReportData) -> str:
    if not d.passes:
        return _section("passes", "Passes", "<p>No passes in this run.</p>")
    head = ["#", "pass", "exact", "matched / changed", "time", "verification", "parity", "fidelity", "decision"]
    rows = []
    for i, p in enumerate(d.passes, 1):
        counts = ", ".join(f"{k} {v}" for k, v in p.counts.items()) or "no match"
        cls = {"kept": "ok", "reverted": "warn", "failed": "bad"}.get(p.decision, "")
        decision = f'<span class="{cls}">{_e(p.decision)}</span>' + (f"<br><small>{_e(p.why)}</small>" if p.why else "")
        rows.append([str(i), _e(p.name), "yes" if p.exact else "no", _e(counts), f"{p.seconds * 1000:.1f} ms",
                     _e(p.verification), _e(p.parity), _e(p.fidelity), decision])
    return _section("passes", "Passes", _table(head, rows, raw=True))


def _ops(d: ReportData) -> str:
    ops = sorted(set(d.op_counts_before) | set(d.op_counts_after))
    if not ops:
        return _section("ops", "Operators", "<p>No models to compare.</p>")
    rows = []
    for op in ops:
        a, b = d.op_counts_before.get(op, 0), d.op_counts_after.get(op, 0)
        delta = b - a
        cls = "" if delta == 0 else ("ok" if delta < 0 else "warn")
        rows.append([_e(op), str(a), str(b), f'<span class="{cls}">{delta:+d}</span>' if delta else "0"])
    total = ["<b>nodes</b>", str(sum(d.op_counts_before.values())), str(sum(d.op_counts_after.values())), ""]
    return _section("ops", "Operators before → after", _table(["op", "before", "after", "Δ"], [*rows, total], raw=True))


def _eval(d: ReportData) -> str:
    if not d.metrics:
        note = d.eval_note or "No evaluation in this run (give --data DIR or --generate N)."
        return _section("eval", "Evaluation", f"<p>{_e(note)}</p>")
    devices = list(dict.fromkeys(k for m in d.metrics for k in m.published))
    head = ["metric", "before", "after", "Δ"] + [f"{dev} (published)" for dev in devices] + ["note"]
    rows = []
    for m in d.metrics:
        delta = (m.after - m.before) if m.before is not None and m.after is not None else None
        rows.append([_e(m.metric), _num(m.before), _num(m.after), "—" if delta is None else f"{delta:+.4f}",
                     *[_num(m.published.get(dev)) for dev in devices], _e(m.note)])
    note = f'<p class="dim">{_e(d.eval_note)}</p>' if d.eval_note else ""
    return _section("eval", "Evaluation", _table(head, rows, raw=True) + note)


def _provenance(d: ReportData) -> str:
    rows = [[_e(k), _e(_plain(v))] for k, v in d.provenance.items()]
    cmds = ("<h3>Vendor commands</h3><pre>" + _e("\n".join(d.commands)) + "</pre>") if d.commands else ""
    return _section("provenance", "Provenance", _table(["what", "value"], rows, raw=True) + cmds)


# -- plots ------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 3.6) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96)
    return fig


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    start = text.find("<svg")  # drop the XML prolog and DOCTYPE: the SVG is inlined into HTML
    return text[start:] if start >= 0 else text


def _throughput_svg(rows: Sequence[PerfRow]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    batches = [r.batch for r in rows]
    for label, values, style in (("before", [r.before_fps for r in rows], "o-"),
                                 ("after", [r.after_fps for r in rows], "s-")):
        pts = [(b, v) for b, v in zip(batches, values, strict=True) if v]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    devices = list(dict.fromkeys(k for r in rows for k in r.published))
    for dev in devices:
        pts = [(r.batch, r.published[dev]) for r in rows if r.published.get(dev)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "x--", alpha=0.6, label=f"{dev} (published)")
    values = [v for r in rows for v in (r.before_fps, r.after_fps, *r.published.values()) if v]
    if values and max(values) / min(values) > 20:  # CPU measurements beside NPU figures: a linear axis hides one
        ax.set_yscale("log")
    if len(set(batches)) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples / s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig)


def _latency_svg(rows: Sequence[PerfRow]) -> str:
    fig = _figure(width=max(4.0, 1.3 * len(rows) + 2))
    ax = fig.add_subplot()
    data, positions, colours, ticks = [], [], [], []
    for i, r in enumerate(rows):
        for j, (samples, colour) in enumerate(((r.before_ms, "#4C72B0"), (r.after_ms, "#DD8452"))):
            if samples:
                data.append(_thin(samples))
                positions.append(3 * i + j)
                colours.append(colour)
        ticks.append((3 * i + 0.5, f"bs{r.batch}"))
    if data:
        parts = ax.boxplot(data, positions=positions, widths=0.8, showfliers=False, patch_artist=True)
        for patch, colour in zip(parts["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
    ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks])
    ax.set_ylabel("ms per call")
    ax.set_title("before (blue) and after (orange)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    return _svg(fig)


def _metrics_svg(rows: Sequence[MetricRow]) -> str:
    fig = _figure(width=max(4.0, 1.2 * len(rows) + 2))
    ax = fig.add_subplot()
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [m.before or 0 for m in rows], width=0.4, label="before")
    ax.bar([x + 0.2 for x in xs], [m.after or 0 for m in rows], width=0.4, label="after")
    ax.set_xticks(list(xs), [m.metric for m in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _svg(fig)


def _plottable(m: MetricRow) -> bool:
    """A row a 0..1 bar chart can show: accuracies and agreements, not max abs errors."""
    values = [v for v in (m.before, m.after) if v is not None]
    return bool(values) and all(0.0 <= v <= 1.0 for v in values)


def _thin(samples: Sequence[float], limit: int = 5000) -> list[float]:
    """At most ``limit`` evenly spaced samples: a box plot of 100k points costs megabytes of SVG for nothing."""
    if len(samples) <= limit:
        return list(samples)
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


# -- helpers ----------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.4f}"


def _fps(x: float | None, error: str | None = None) -> str:
    if error:
        return f'<span class="bad" title="{_e(error)}">failed</span>'
    if x is None:
        return "—"
    return f"{x:,.1f}" if x >= 10 else f"{x:,.3f}"


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{_align(c)}>{c if raw else _e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_NUMERIC = re.compile(r"^(<span[^>]*>)?[-+×]?[\d,.]+( \[[\d.,]+, [\d.inf,]+\])?( ms)?(</span>)?$")


def _align(cell: str) -> str:
    return ' class="num"' if _NUMERIC.match(cell.strip()) else ""


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#177a1e;font-weight:600}.bad{color:#b00020;font-weight:600}.warn{color:#a05a00;font-weight:600}
.dim{color:#777}.status{font-family:monospace;font-size:1rem;padding:.4rem;background:#f7f7f7}
figure{display:inline-block;margin:.5rem 1rem .5rem 0}figcaption{font-size:.85rem;color:#555;text-align:center}
figure svg{max-width:100%;height:auto}pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;font-size:.8rem}
"""

# Runs in the page itself: counts sections and plots, records script errors (nothing is fetched).
_CHECK = """
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message));document.body.dataset.errors=errors.join('|');});
  var origError=console.error;console.error=function(){errors.push(Array.prototype.join.call(arguments,' '));
    document.body.dataset.errors=errors.join('|');origError.apply(console,arguments);};
  window.addEventListener('load',function(){
    var want=document.body.dataset.expect.split(','),missing=[];
    want.forEach(function(k){if(!document.querySelector('section[data-section="'+k+'"]'))missing.push(k);});
    var plots=document.querySelectorAll('figure[data-plot] svg');
    var drawn=0;plots.forEach(function(s){var b=s.getBBox();if(b.width>0&&b.height>0)drawn++;});
    document.body.dataset.sections=String(want.length-missing.length);
    document.body.dataset.missing=missing.join(',');
    document.body.dataset.plots=String(plots.length);
    document.body.dataset.drawn=String(drawn);
    document.body.dataset.errors=errors.join('|');
    document.body.dataset.rendered='yes';
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head>
<body data-expect="{sections}" data-rendered="no">
<h1>{title}</h1>
{body}
<script>{check}</script>
</body></html>
"""
