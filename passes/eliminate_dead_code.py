"""Drop nodes, initializers and value_info that no graph output depends on.

    node ─┐
          ├─► (no path to a graph output)  →  removed
    init ─┘

Graph inputs are kept even when unused: removing one would change the model's
interface. Subgraph bodies (If/Loop) are not swept; their outer reads keep the
tensors they use alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.graph import GraphIndex
from surgery.pass_infra import Pass, PassResult

from ._dead_code import sweep, unused_inputs


@dataclass(frozen=True, kw_only=True)
class EliminateDeadCode(Pass):
    """Drop nodes, initializers and value_info that no graph output depends on."""

    name: ClassVar[str] = "eliminate_dead_code"
    exact: ClassVar[bool] = True

    def call(self, model: onnx.ModelProto) -> PassResult:
        index = GraphIndex(model.graph)
        counts = sweep(model.graph, index)
        notes = []
        if not any(counts.values()):
            notes.append("nothing to remove: every node and initializer feeds a graph output")
        # consumers of removed nodes are gone too: only an input read by nobody was unused before the sweep
        for name in unused_inputs(model.graph, index):
            notes.append(f"graph input {name!r} is unused; kept (removing it would change the interface)")
        return PassResult(model, changed=any(counts.values()), counts={k: v for k, v in counts.items() if v},
                          notes=notes)
