"""Shared dead-code sweep used by eliminate_dead_code, prune_outputs and truncate."""

from __future__ import annotations

import onnx

from surgery.graph import GraphIndex


def sweep(graph: onnx.GraphProto, index: GraphIndex | None = None) -> dict[str, int]:
    """Remove nodes, initializers and value_info no graph output depends on. Returns counts removed.

    ``index`` must describe ``graph`` as it is now; it is stale afterwards.
    """
    index = index or GraphIndex(graph)
    outputs = [o.name for o in graph.output]
    live = index.live_nodes(outputs)
    removed_nodes = len(index.nodes) - len(live)
    if removed_nodes:
        kept = [index.nodes[i] for i in live]
        del graph.node[:]
        graph.node.extend(kept)
    used: set[str] = set(outputs)
    reads = index.reads
    for i in live:
        used.update(reads[i])
    counts = {"nodes": removed_nodes, "initializers": 0, "value_info": 0}

    dead_inits = [k for k, t in enumerate(graph.initializer) if t.name not in used]
    if dead_inits:
        counts["initializers"] = len(dead_inits)
        dead_names = {graph.initializer[k].name for k in dead_inits}
        kept_inits = [t for t in graph.initializer if t.name not in dead_names]
        del graph.initializer[:]
        graph.initializer.extend(kept_inits)
        # IR < 4 models list initializers among the inputs too: drop those entries with them.
        stale = [k for k, v in enumerate(graph.input) if v.name in dead_names]
        for k in reversed(stale):
            del graph.input[k]

    if len(graph.value_info):
        alive = used | {out for i in live for out in index.nodes[i].output}
        kept_vi = [v for v in graph.value_info if v.name in alive]
        dead_vi = len(graph.value_info) - len(kept_vi)
    else:
        dead_vi = 0
    if dead_vi:
        counts["value_info"] = dead_vi
        del graph.value_info[:]
        graph.value_info.extend(kept_vi)
    return counts


def unused_inputs(graph: onnx.GraphProto, index: GraphIndex) -> list[str]:
    """Graph inputs that no node reads (kept: removing one would change the model's interface)."""
    read: set[str] = {o.name for o in graph.output}
    read.update(index.consumers)
    inits = {t.name for t in graph.initializer}
    return [v.name for v in graph.input if v.name not in read and v.name not in inits]
