"""From a ``surgery run`` record to the report's data: perf rows before vs after, pass rows, evaluation rows.

Kept apart from :mod:`surgery.run` so a report can be re-rendered from a saved ``run.json``
(``surgery import … --run DIR`` does that after the NPU host's results come back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from surgery.pairing import measured_together, speedup
from surgery.recipe import Recipe
from surgery.records import PerfRecord
from surgery.report import MetricRow, PassRow, PerfRow, ReportData
from surgery.stats import FASTER, SAME, SLOWER, interval_text


def _side(record: PerfRecord) -> str:
    return str(record.extra.get("side", ""))


def perf_rows(records: Sequence[PerfRecord], recipe: Recipe | None) -> list[PerfRow]:
    """One row per batch: before and after, the speed-up with the interval their measurement allows."""
    by_batch: dict[int, dict[str, PerfRecord]] = {}
    for r in records:
        side = _side(r)
        if side in ("before", "after"):
            by_batch.setdefault(r.batch, {})[side] = r
    published = recipe.published.throughput if recipe is not None else {}
    rows = []
    for batch in sorted(by_batch):
        pair = by_batch[batch]
        before, after = pair.get("before"), pair.get("after")
        row = PerfRow(batch=batch, published={dev: col.get(batch) for dev, col in published.items()})
        if before is not None:
            row.before_fps, row.before_error = before.throughput, before.error
            row.before_ms = list(before.latencies_ms)
        if after is not None:
            row.after_fps, row.after_error = after.throughput, after.error
            row.after_ms = list(after.latencies_ms)
        if before is not None and after is not None and before.ok and after.ok:
            ratio = speedup(before, after)
            row.paired = measured_together(before, after)
            if ratio is not None:
                row.ratio, row.low, row.high, row.verdict = ratio.ratio, ratio.low, ratio.high, ratio.verdict
            elif before.throughput and after.throughput:
                row.ratio = after.throughput / before.throughput
                row.verdict = "no interval (no latency samples)"
        elif before is None or after is None:
            row.verdict = "not measured on both"
        else:
            row.verdict = "failed"
        rows.append(row)
    return rows


def verdict_summary(records: Sequence[PerfRecord]) -> str:
    """``after vs before: faster at batch 1, 4; no significant change at batch 8``."""
    rows = perf_rows(records, None)
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(row.verdict or "not compared", []).append(row.batch)
    order = [FASTER, SLOWER, SAME]
    keys = [k for k in order if k in groups] + [k for k in groups if k not in order]
    text = "; ".join(f"{k} at batch {', '.join(map(str, groups[k]))}" for k in keys)
    return f"after vs before: {text}" if text else ""


def pass_rows(passes: Sequence[Mapping[str, Any]]) -> list[PassRow]:
    rows = []
    for p in passes:
        v = p.get("verification") or {}
        status = v.get("status", "")
        verification = status + (f": {'; '.join(v['reasons'])}" if v.get("reasons") else "")
        speed = p.get("speed") or {}
        why = p.get("why", "")
        if speed.get("ratio") is not None and p.get("decision") == "kept":
            interval = interval_text(speed.get("low"), speed.get("high"))
            why = (why + "; " if why else "") + (f"speed at batch {speed['batch']}: ×{speed['ratio']:.3f} "
                                                 f"{interval} {speed['verdict']}")
        rows.append(PassRow(name=str(p.get("name")), exact=bool(p.get("exact")), counts=dict(p.get("counts") or {}),
                            seconds=float(p.get("seconds") or 0.0), verification=verification,
                            parity=str(p.get("parity") or ""),
                            fidelity=" ".join(x for x in (p.get("fidelity"), p.get("budget")) if x),
                            decision=str(p.get("decision")), why=why))
    return rows


def metric_rows(evaluation: Mapping[str, Any], recipe: Recipe | None) -> tuple[list[MetricRow], str]:
    """Accuracy before and after (with labels) and the agreement figures; the note on what they mean."""
    if not evaluation:
        return [], ""
    rows: list[MetricRow] = []
    accuracy = (evaluation.get("extra") or {}).get("accuracy")
    if accuracy:
        published = {p["metric"]: p["figures"] for p in evaluation.get("published", [])}
        for key, before in accuracy["before"].items():
            rows.append(MetricRow(metric=key, before=_float(before), after=_float(accuracy["after"].get(key)),
                                  published=dict(published.get(key, {}))))
    for key, value in (evaluation.get("metrics") or {}).items():
        rows.append(MetricRow(metric=f"{key} (after vs before)", before=None, after=_float(value),
                              note=str((evaluation.get("notes") or {}).get(key, ""))))
    note = "; ".join(evaluation.get("notices") or [])
    if evaluation.get("synthetic"):
        note = (note + "; " if note else "") + ("generated or synthetic images: these figures say how far the "
                                                "rewrite moved the answers, they are not accuracy")
    return rows, note


def _float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def build_report(record: Mapping[str, Any], perf: Sequence[PerfRow], recipe: Recipe | None, status: str
                 ) -> ReportData:
    """The report of one run, from its record (``RunRecord.to_dict()``) and perf rows."""
    extra = record.get("extra") or {}
    inp, out = record.get("input_model") or {}, record.get("output_model") or {}
    name = inp.get("zoo") or inp.get("path") or "model"
    data = ReportData(title=f"{name}: before vs after on {record.get('target')}", model=str(name),
                      target=str(record.get("target")), status=status, created=str(record.get("started")))
    data.perf = list(perf)
    data.passes = pass_rows(record.get("passes") or [])
    data.op_counts_before = dict((extra.get("before_summary") or {}).get("op_counts", {}))
    data.op_counts_after = dict((extra.get("after_summary") or {}).get("op_counts", {}))
    data.metrics, data.eval_note = metric_rows(record.get("eval") or {}, recipe)
    data.notes = list(extra.get("notes") or [])
    if extra.get("reused_steps"):
        data.notes.append(f"reused from an earlier run (inputs unchanged): {', '.join(extra['reused_steps'])}")
    if extra.get("plan"):
        data.notes.append(f"vendor commands for the NPU host: {extra['plan']}")
    data.bisection = str(extra.get("bisection") or "")
    versions = record.get("versions") or {}
    host = record.get("host") or {}
    data.provenance = {
        "before": f"{inp.get('path')} sha256 {str(inp.get('digest'))[:16]}…",
        "after": f"{out.get('path')} sha256 {str(out.get('digest'))[:16]}…",
        "source model": inp.get("source", ""),
        "host": f"{host.get('cpu', '')} ({host.get('cores', '?')} cores), {host.get('os', '')}",
        "versions": versions,
        "run folder": extra.get("run_folder", ""),
        "started / finished": f"{record.get('started')} / {record.get('finished')}",
    }
    if recipe is not None:
        for device, n in (getattr(recipe.published, "per_card", {}) or {}).items():
            data.published_basis[device] = f"per card of {n} devices (the guide's ×{n} of the per-device rate)"
        data.provenance["guide"] = f"{recipe.guide} ({recipe.upstream})"
        if recipe.published.source:
            data.provenance["published figures"] = recipe.published.source
    plan = extra.get("plan_commands")
    if plan:
        data.commands = list(plan)
    return data
