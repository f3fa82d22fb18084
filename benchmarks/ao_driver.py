"""Run one auto-optimizer knowledge on a model and time it: executed by the auto-optimizer venv's Python.

    /work/ait-venv/bin/python benchmarks/ao_driver.py KNOWLEDGE IN.onnx OUT.onnx [--repeat N]

Prints one JSON line: parse, optimize and save seconds (best of N), the knowledges it applied,
or the error it raised. Imports nothing from surgery (it runs where surgery is not installed).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    knowledge, src, dst = sys.argv[1:4]
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    import logging

    from auto_optimizer import OnnxGraph
    from auto_optimizer.graph_optimizer.optimizer import GraphOptimizer

    # its INFO lines per match would dominate the timing on 20k nodes; its WARNINGs carry the knowledge's
    # failure (it catches the exception, logs it and returns the graph unchanged): keep those
    failures: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not record.getMessage().startswith("Error applying knowledge"):  # the next line says what
                failures.append(record.getMessage())

    for name in ("GraphOptimizer", ""):
        log = logging.getLogger(name)
        log.handlers[:] = [Keep(level=logging.WARNING)]
        log.setLevel(logging.WARNING)
        log.propagate = False

    best = None
    applied: list[str] = []
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            graph = OnnxGraph.parse(src)
            t1 = time.perf_counter()
            graph, applied = GraphOptimizer([knowledge]).apply_knowledges(graph)
            t2 = time.perf_counter()
            graph.save(dst)
            t3 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2)
            if best is None or sum(times) < sum(best):
                best = times
    except Exception as exc:  # report the peer's failure as a figure, not a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}))
        return
    assert best is not None
    out = {"parse": best[0], "optimize": best[1], "save": best[2], "total": sum(best), "applied": applied}
    if failures and not applied:
        out["error"] = " / ".join(dict.fromkeys(failures))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
