"""Rules (pattern → check → rewrite), the sweep that finds their sites, and the report of what they did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import onnx

from surgery.pass_infra import Pass, PassResult

from .editor import Editor, node_label
from .pattern import Pattern, Step, attr_text, pattern_from_doc
from .state import DEFAULT_DOMAINS, _ModelState, _Scope

NOTE_LIMIT = 40  # per rule: site-by-site reasons beyond this are summarised in one line


@dataclass
class Match:
    """One site: the nodes matched, in pattern order (chain) or graph order (sibling group)."""

    pattern: Pattern
    nodes: list[onnx.NodeProto]
    ids: list[int]
    tensor: str | None = None  # the shared input of a sibling group
    plan: Any = None  # what ``check`` worked out, for ``rewrite`` to use instead of computing it again

    def __getitem__(self, key: int | str) -> onnx.NodeProto:
        if isinstance(key, str):
            k = self.pattern.label_index(key)
            if k is None:
                raise KeyError(f"pattern {self.pattern.text()!r} has no label {key!r}")
            return self.nodes[k]
        return self.nodes[key]

    @property
    def anchor(self) -> onnx.NodeProto:
        return self.nodes[-1]

    def site(self) -> str:
        if self.pattern.fan:
            return f"{self.nodes[0].op_type} nodes reading {self.tensor!r}"
        n = self.anchor
        return f"{n.op_type} {n.name or '(unnamed)'}"


class Rule:
    """A rewrite: pattern (first docstring line, arrow notation), ``check``, ``rewrite``.

    Subclasses may set ``label`` (the count key; default the pattern's op types), ``subgraphs``
    (False: top-level graph only) and ``rematch`` (False: one rewrite per anchor).
    """

    pattern: ClassVar[Pattern | None] = None
    label: ClassVar[str] = ""
    subgraphs: ClassVar[bool] = True
    rematch: ClassVar[bool] = True  # after a rewrite, try the same anchor again

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        parsed = pattern_from_doc(cls.__dict__.get("__doc__"))
        if parsed is not None:
            cls.pattern = parsed
            if not cls.__dict__.get("label"):
                cls.label = parsed.ops_text()

    def check(self, g: Editor, m: Match) -> str | None:
        """None when the site may be rewritten, else the reason it is skipped."""
        return None

    def rewrite(self, g: Editor, m: Match) -> str | dict[str, int] | None:  # pragma: no cover - abstract
        """Edit the graph through ``g``; return a count key (or counts) for this site, default ``label``."""
        raise NotImplementedError

    def begin(self, g: Editor) -> None:
        """Called once per graph before its sweep (e.g. to precompute something)."""


@dataclass
class RewriteReport:
    """What a run of rules did to a model: sites rewritten by kind, reasons for the rest."""

    changed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def to_pass_result(self, model: onnx.ModelProto) -> PassResult:
        return PassResult(model, changed=self.changed, counts=dict(self.counts), notes=list(self.notes))


class _Notes:
    """Per-rule near-miss reasons: sites listed up to a limit, early structural misses counted by reason."""

    def __init__(self, rule: Rule, where: str):
        self.rule, self.where = rule, where
        self.sites: list[str] = []
        self.more = 0
        self.grouped: dict[str, int] = {}
        self.candidates = 0

    def site(self, text: str) -> None:
        if len(self.sites) < NOTE_LIMIT:
            self.sites.append(text + self.where)
        else:
            self.more += 1

    def group(self, reason: str) -> None:
        self.grouped[reason] = self.grouped.get(reason, 0) + 1

    def lines(self) -> list[str]:
        out = list(self.sites)
        if self.more:
            out.append(f"… and {self.more} more sites skipped by {self.rule.label}{self.where}")
        for reason, n in self.grouped.items():
            out.append(f"{n} × {reason}{self.where}")
        return out


def run_rules(model: onnx.ModelProto, rules: Sequence[Rule], *, subgraphs: bool = True,
              max_repeats: int = 1000) -> RewriteReport:
    """Run each rule over the model's graph (and its If/Loop/Scan bodies), in place.

    Rules run one after another; each one sweeps every graph once. ``max_repeats`` bounds how
    often one anchor is re-matched after rewrites (a rule that never stops matching is a bug).
    """
    report = RewriteReport()
    state = _ModelState(model)
    for rule in rules:
        if rule.pattern is None:
            raise TypeError(f"{type(rule).__name__} has no pattern: its docstring's first line needs '⇒'")
        seen_any = [False]
        first_note = len(report.notes)
        _run_graph(model.graph, state, None, rule, report, subgraphs and rule.subgraphs, max_repeats, "", seen_any)
        if not seen_any[0]:
            report.notes.insert(first_note, f"no {rule.pattern.text()} in the graph")
    return report


def _run_graph(graph: onnx.GraphProto, state: _ModelState, parent: _Scope | None, rule: Rule,
               report: RewriteReport, subgraphs: bool, max_repeats: int, where: str, seen_any: list[bool]) -> None:
    editor = Editor(graph, state, parent)
    notes = _Notes(rule, where)
    rule.begin(editor)
    if rule.pattern.fan:  # type: ignore[union-attr]
        _sweep_fan(editor, rule, report, notes)
    else:
        _sweep_chain(editor, rule, report, notes, max_repeats)
    if notes.candidates:
        seen_any[0] = True
    editor.commit()
    if editor.changed:
        report.changed = True
    report.notes.extend(notes.lines())
    if not subgraphs:
        return
    scope: _Scope | None = None
    for node in graph.node:
        for a in node.attribute:
            if a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                continue
            scope = scope or _Scope(graph, state, parent)
            bodies = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for k, body in enumerate(bodies):
                suffix = f"[{k}]" if len(bodies) > 1 else ""
                _run_graph(body, state, scope, rule, report, subgraphs, max_repeats,
                           f" (in {node.op_type} {node.name or '(unnamed)'}.{a.name}{suffix}){where}", seen_any)


def _step_matches(g: Editor, node: onnx.NodeProto, step: Step) -> str | None:
    """None when ``node`` fits ``step``, else a name-free phrase saying why not (``a Relu, not Cast``)."""
    if node.op_type not in step.ops or node.domain not in DEFAULT_DOMAINS:
        op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        return f"a {op}, not {'|'.join(step.ops)}"
    for c in step.conds:
        value = g.attr(node, c.attr)
        text = "(absent)" if value is None else attr_text(value)
        ok = text in c.values
        if ok == c.negate:
            return f"a {node.op_type} with {c.attr}={text}, not {c.text()}"
    return None


def _sweep_chain(g: Editor, rule: Rule, report: RewriteReport, notes: _Notes, max_repeats: int) -> None:
    pattern = rule.pattern
    assert pattern is not None
    anchor_ops = set(pattern.anchor.ops)
    single = len(pattern.steps) == 1
    for i in range(g.n_original):
        node = g.nodes[i]
        if node.op_type not in anchor_ops or i in g.removed:
            continue
        miss = _step_matches(g, node, pattern.anchor)
        if miss is not None:
            if single:
                notes.group(f"{node.op_type} nodes that are {miss}")
            continue
        rewrites = 0
        while rewrites < max_repeats and i not in g.removed:
            if rewrites and (not rule.rematch or _step_matches(g, node, pattern.anchor) is not None):
                break
            m, why, depth = _match_chain(g, i, pattern)
            if m is None:
                if not rewrites:
                    if depth >= 1:
                        notes.candidates += 1
                        notes.site(f"{node_label(g.nodes[i])}: {why}")
                    else:
                        notes.group(f"{'|'.join(pattern.anchor.ops)} nodes whose {why}")
                break
            if not rewrites:
                notes.candidates += 1
            reason = rule.check(g, m)
            if reason is not None:
                if not rewrites:
                    notes.site(f"{m.site()}: {reason}")
                break
            g.cursor = i
            _count(report, rule, rule.rewrite(g, m))
            rewrites += 1
        if rewrites >= max_repeats:
            raise RuntimeError(f"{type(rule).__name__} keeps matching {node_label(node)} after {max_repeats} rewrites")


def _match_chain(g: Editor, anchor: int, pattern: Pattern) -> tuple[Match | None, str, int]:
    """Walk producers back from the anchor. Returns (match, why not, how many steps matched before failing).

    The reason names no node when nothing but the anchor matched, so those misses group by reason.
    """
    steps = pattern.steps
    ids = [anchor]
    k = len(steps) - 1
    while k > 0:
        node = g.nodes[ids[0]]
        step, prev = steps[k], steps[k - 1]
        slots = range(len(node.input)) if step.any_slot else range(min(1, len(node.input)))
        found, phrases, producers = None, [], []
        for s in slots:
            name = node.input[s]
            p = g.producer.get(name) if name else None
            if p is None or p in g.removed or p in ids:
                continue
            miss = _step_matches(g, g.nodes[p], prev)
            if miss is None:
                found = p
                break
            phrases.append(f"input {s} comes from {miss}")
            producers.append(g.nodes[p].op_type)
        if found is None:
            matched = len(steps) - 1 - k
            wanted = "|".join(prev.ops)
            if step.any_slot:
                froms = ", ".join(dict.fromkeys(producers))
                why = (f"inputs come from {froms}, none from {wanted}" if producers else
                       f"inputs are graph inputs or constants, none from {wanted}")
            else:
                why = phrases[0] if phrases else f"input 0 is a graph input or a constant, not from {wanted}"
            if matched:
                why = f"{why} (at {node_label(node)})"
            return None, why, matched
        ids.insert(0, found)
        k -= 1
    return Match(pattern=pattern, nodes=[g.nodes[i] for i in ids], ids=ids), "", len(steps)


def _sweep_fan(g: Editor, rule: Rule, report: RewriteReport, notes: _Notes) -> None:
    pattern = rule.pattern
    assert pattern is not None
    step = pattern.anchor
    ops = set(step.ops)
    groups: dict[str, list[int]] = {}
    for i in range(g.n_original):
        node = g.nodes[i]
        if node.op_type in ops and node.input and node.input[0]:
            if _step_matches(g, node, step) is None:
                groups.setdefault(node.input[0], []).append(i)
            else:
                notes.group(f"{node.op_type} nodes that are {_step_matches(g, node, step)}")
    for tensor, ids in groups.items():
        live = [i for i in ids if i not in g.removed]
        if not live:
            continue
        notes.candidates += 1
        m = Match(pattern=pattern, nodes=[g.nodes[i] for i in live], ids=live, tensor=tensor)
        reason = rule.check(g, m)
        if reason is not None:
            notes.site(f"{m.site()}: {reason}")
            continue
        g.cursor = live[0]
        _count(report, rule, rule.rewrite(g, m))


def _count(report: RewriteReport, rule: Rule, result: str | dict[str, int] | None) -> None:
    if isinstance(result, dict):
        for k, v in result.items():
            report.add(k, v)
    else:
        report.add(result or rule.label)


def edit_graphs(model: onnx.ModelProto, visit: Callable[[Editor, str], None], *, subgraphs: bool = True) -> bool:
    """Call ``visit(editor, where)`` on the main graph, then on every If/Loop/Scan body, committing each.

    For whole-graph rewrites that are not one pattern (regions, dataflow analyses): they get the
    same editor, traversal and ``where`` suffix for notes (``" (in If cond.then_branch)"``) as rules.
    Returns whether anything changed.
    """
    state = _ModelState(model)
    return _edit_graph(model.graph, state, None, visit, subgraphs, "")


def _edit_graph(graph: onnx.GraphProto, state: _ModelState, parent: _Scope | None,
                visit: Callable[[Editor, str], None], subgraphs: bool, where: str) -> bool:
    editor = Editor(graph, state, parent)
    visit(editor, where)
    editor.commit()
    changed = editor.changed
    if subgraphs:
        scope: _Scope | None = None
        for node in graph.node:
            for a in node.attribute:
                if a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                    continue
                scope = scope or _Scope(graph, state, parent)
                bodies = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
                for k, body in enumerate(bodies):
                    suffix = f"[{k}]" if len(bodies) > 1 else ""
                    inner = f" (in {node.op_type} {node.name or '(unnamed)'}.{a.name}{suffix}){where}"
                    changed = _edit_graph(body, state, scope, visit, subgraphs, inner) or changed
    return changed


class PatternPass(Pass, Rule):
    """A pass whose rewrite is one or more rules; by default the pass is its own rule.

    Its summary (first docstring line) is then also its pattern. ``call`` runs the rules through
    :func:`run_rules` and reports sites rewritten (``counts``) and skipped (``notes``).
    """

    def rules(self) -> Sequence[Rule]:
        """The rules to run, in order (default: this pass itself)."""
        return [self]

    def call(self, model: onnx.ModelProto) -> PassResult:
        return run_rules(model, self.rules()).to_pass_result(model)
