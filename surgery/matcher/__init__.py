"""The one pattern matcher every rewrite pass uses: match → check → rewrite, over a linear-time index.

API (stable: passes in ``passes/`` build on it)
------------------------------------------------
A **rule** writes its pattern once, in arrow notation, as the first line of its docstring
(the text left of ``⇒``; what follows is prose), and implements two methods::

    class BnToMulAdd(PatternPass):           # a Pass that is its own rule (or: class R(Rule), several per pass)
        \"\"\"Transpose → BatchNormalization → Transpose ⇒ Mul → Add, when the Transposes cancel.\"\"\"

        def check(self, g: Editor, m: Match) -> str | None:
            ...                              # None: go ahead; a string: why this site is skipped
                                             # (m.plan = what it worked out, for rewrite to reuse)
        def rewrite(self, g: Editor, m: Match) -> str | None:
            ...                              # edit through g's helpers; return a count key (default: label)

    result = run_rules(model, [rule, ...])   # walks If/Loop/Scan bodies too; a RewriteReport
    edit_graphs(model, visit)                # the same traversal and Editor for whole-graph rewrites
    return result.to_pass_result(model)      # counts = sites rewritten by kind; notes = why others were not

``PatternPass.call`` does exactly that with ``self.rules()`` (default: ``[self]``).

Pattern grammar (one line)::

    pattern := chain | fan
    chain   := step (arrow step)*        anchored at the last step, walked backwards through producers
    arrow   := "→" | "->"                an output of the left node is input 0 of the right one
             | "→*" | "->*"              an output of the left node is any input of the right one
    fan     := step "+"                  every node matching step that reads one tensor as input 0
                                         (siblings; the match is the group, in graph order)
    step    := [label ":"] Op("|"Op)* ["(" cond ("," cond)* ")"]
    cond    := attr "=" value("|"value)* | attr "!=" value("|"value)*

Conditions compare an attribute's value (as text: ``mode=linear|cubic``, ``axis=1``) and use the
operator schema's default when the attribute is absent. Only default-domain ONNX ops match.

Sweep order and edits: anchors are visited once, in graph order; after a rewrite the same anchor
is matched again (so an outer Concat absorbs every inner one), and nodes a rewrite created take
part in later matches (Slice → Slice → Slice merges in one sweep). New nodes go before the
match's anchor (chain) or first sibling (fan) unless ``before=`` says otherwise; the node list is
rebuilt once at the end and re-sorted topologically only if an edit broke the order.

:class:`Editor` helpers: ``producer``, ``consumers``, ``is_output``, ``constant`` (initializers
and Constant nodes, outer scopes included), ``attr``/``set_attr``/``drop_attr``, ``set_input``,
``add_node``, ``replace_node`` (a copy in its place with other inputs, outputs or attributes),
``add_initializer`` (unique names), ``remove`` (their now-unused constant inputs go
with them), ``replace_uses``, ``shape``/``dtype`` (value_info, else onnx shape inference run once,
lazily), ``forget_type`` (a tensor whose type a rewrite changed), ``unique_name``, ``opset``.

Why our own matcher: onnx-graphsurgeon's ``GraphPattern`` needs a gs import + export round trip
(20-25x onnx load+save on long chains) and onnxscript's rewriter converts to onnx-ir and back
(17-19x) before any matching; editing the protobuf in place through this index costs a few x.
``benchmarks/bench_matchers.py`` measures the three on the same pattern.
"""

from __future__ import annotations

from .editor import Editor, node_label
from .pattern import Cond, Pattern, Step, attr_text, pattern_from_doc
from .rules import Match, PatternPass, RewriteReport, Rule, edit_graphs, run_rules
from .state import DEFAULT_DOMAINS

__all__ = ["DEFAULT_DOMAINS", "Cond", "Editor", "Match", "Pattern", "PatternPass", "RewriteReport", "Rule", "Step",
           "attr_text", "edit_graphs", "node_label", "pattern_from_doc", "run_rules"]
