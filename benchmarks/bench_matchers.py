"""Why surgery has its own matcher: one rewrite (Transpose → BatchNormalization → Transpose ⇒ Mul → Add)
done by three matchers on the same graph, against onnx load+save.

    python benchmarks/bench_matchers.py [--sizes 2000,20000] [--repeat 3]
                                        [--onnxscript-python /work/onnxscript-venv/bin/python]

(a) ``onnx.load`` + ``onnx.save``;
(b) surgery.matcher (``bn_to_mul_add``): load, rewrite the protobuf in place, save;
(c) onnx-graphsurgeon ``GraphPattern``: load, ``import_onnx``, ``match_all``, rewire, cleanup, ``export_onnx``, save;
(d) onnxscript's rewriter (a ``RewriteRuleClassBase`` rule over onnx-ir): load into onnx-ir, ``rewrite``, save;
    run in its own venv (onnxscript is no dependency of ours), timed inside that process.
Each prints seconds (best of N), the ratio to (a), and the sites it rewrote; the outputs of
(b)-(d) are compared with the input model on onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parent))
from bench_passes import build_bn_to_mul_add, max_diff, outputs

ONNXSCRIPT_RULE = r'''
import json, sys, time
import numpy as np
import onnx, onnx_ir as ir
from onnxscript.rewriter import rewrite
from onnxscript.rewriter._basics import MatchResult
from onnxscript.rewriter._rewrite_rule import RewriteRuleClassBase, RewriteRuleSet


class TransposeBnTranspose(RewriteRuleClassBase):
    def pattern(self, op, x):
        t1 = op.Transpose(x, _allow_other_attributes=True, _outputs=["t1"])
        bn = op.BatchNormalization(t1, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["bn"])
        return op.Transpose(bn, _allow_other_attributes=True, _outputs=["t2"])

    def check(self, context, x, t1, bn, t2):
        result = MatchResult()
        p = list(t1.producer().attributes["perm"].as_ints())
        q = list(t2.producer().attributes["perm"].as_ints())
        if len(p) != len(q) or any(p[q[i]] != i for i in range(len(q))):
            return result.fail("perms do not cancel")
        if any(v.const_value is None for v in bn.producer().inputs[1:]):
            return result.fail("statistics not constant")
        return result

    def rewrite(self, op, x, t1, bn, t2):
        node = bn.producer()
        scale, bias, mean, var = (v.const_value.numpy().astype(np.float64) for v in node.inputs[1:])
        eps = node.attributes.get_float("epsilon", 1e-5)
        s = scale / np.sqrt(var + eps)
        b = bias - mean * s
        perm = list(t1.producer().attributes["perm"].as_ints())
        shape = [1] * len(perm)
        shape[perm[1]] = s.size
        shape = shape[perm[1]:]
        mul = op.Mul(x, op.initializer(ir.tensor(s.reshape(shape).astype(np.float32)), name=node.name + "_mul"))
        return op.Add(mul, op.initializer(ir.tensor(b.reshape(shape).astype(np.float32)), name=node.name + "_add"))


src, dst, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
rules = RewriteRuleSet([TransposeBnTranspose.rule()])
best = None
for _ in range(repeat):
    t0 = time.perf_counter()
    model = ir.load(src)
    model = rewrite(model, pattern_rewrite_rules=rules)
    ir.save(model, dst)
    t = time.perf_counter() - t0
    best = t if best is None else min(best, t)
print(json.dumps({"total": best}))
'''


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours(src: Path, dst: Path) -> None:
    from surgery.passes import BnToMulAdd

    from surgery.graph import load_model, save_model

    model = load_model(src)
    BnToMulAdd()(model)
    save_model(model, dst)


def graphsurgeon(src: Path, dst: Path) -> None:
    import onnx_graphsurgeon as gs

    gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # its per-node match log would be what we time
    graph = gs.import_onnx(onnx.load(src))
    pattern = gs.GraphPattern()
    x, s, b, m, v = (pattern.variable() for _ in range(5))
    t1 = pattern.add("t1", "Transpose", inputs=[x])
    bn = pattern.add("bn", "BatchNormalization", inputs=[t1, s, b, m, v])
    t2 = pattern.add("t2", "Transpose", inputs=[bn])
    pattern.set_output_tensors([t2])
    for mapping in pattern.match_all(graph):
        n1, nb, n2 = mapping.get("t1"), mapping.get("bn"), mapping.get("t2")
        p, q = n1.attrs["perm"], n2.attrs["perm"]
        if any(p[q[i]] != i for i in range(len(q))) or not all(isinstance(t, gs.Constant) for t in nb.inputs[1:]):
            continue
        scale, bias, mean, var = (t.values.astype(np.float64) for t in nb.inputs[1:])
        sc = scale / np.sqrt(var + nb.attrs.get("epsilon", 1e-5))
        shape = [1] * len(p)  # the coefficients broadcast on BN's axis as it was before the first Transpose
        shape[p[1]] = sc.size
        shape = shape[p[1]:]
        mid = gs.Variable(f"{nb.name}_mul_out", dtype=np.float32)
        out = n2.outputs[0]
        n2.outputs.clear()
        graph.nodes.append(gs.Node("Mul", inputs=[n1.inputs[0], gs.Constant(f"{nb.name}_s",
                                   sc.reshape(shape).astype(np.float32))], outputs=[mid]))
        graph.nodes.append(gs.Node("Add", inputs=[mid, gs.Constant(f"{nb.name}_b",
                                   (bias - mean * sc).reshape(shape).astype(np.float32))], outputs=[out]))
    graph.cleanup().toposort()
    onnx.save(gs.export_onnx(graph), dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--onnxscript-python",
                        default=os.environ.get("ONNXSCRIPT_PYTHON", "/work/onnxscript-venv/bin/python"))
    args = parser.parse_args()
    import onnx_graphsurgeon  # noqa: F401 - imported before timing, as the other runs' imports are
    import surgery.passes  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="bench-matchers-"))
    script = tmp / "onnxscript_rule.py"
    script.write_text(ONNXSCRIPT_RULE)
    print(f"{'nodes':>7} | {'matcher':<24} {'seconds':>8} {'x load+save':>11} {'BNs left':>8} {'max |Δ|':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        model = build_bn_to_mul_add(max(1, size // 4))
        n = len(model.graph.node)
        src = tmp / f"bn{n}.onnx"
        onnx.save(model, src)
        feed = {"x": np.random.default_rng(0).standard_normal((1, 6, 8)).astype(np.float32)}
        ref = outputs(model, feed)
        base = best_of(lambda src=src: onnx.save(onnx.load(src), tmp / "copy.onnx"), args.repeat)
        print(f"{n:>7} | {'onnx load+save':<24} {base:>7.3f}s {1.0:>10.1f}x")
        runs = {"surgery.matcher": lambda s, d: best_of(lambda: ours(s, d), args.repeat),
                "onnx-graphsurgeon": lambda s, d: best_of(lambda: graphsurgeon(s, d), args.repeat)}
        if Path(args.onnxscript_python).exists():
            def onnxscript_run(s: Path, d: Path) -> float | str:
                proc = subprocess.run([args.onnxscript_python, str(script), str(s), str(d), str(args.repeat)],
                                      capture_output=True, text=True, check=False)
                line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("{")), None)
                return json.loads(line)["total"] if line else f"failed: {(proc.stderr.splitlines() or ['?'])[-1]}"
            runs["onnxscript rewriter"] = onnxscript_run
        for label, run in runs.items():
            dst = tmp / f"bn{n}.{label.split()[0]}.onnx"
            seconds = run(src, dst)
            if isinstance(seconds, str):
                print(f"{n:>7} | {label:<24} {seconds}")
                continue
            result = onnx.load(dst)
            left = sum(1 for node in result.graph.node if node.op_type == "BatchNormalization")
            print(f"{n:>7} | {label:<24} {seconds:>7.3f}s {seconds / base:>10.1f}x {left:>8} "
                  f"{max_diff(outputs(result, feed), ref):>8}", flush=True)


if __name__ == "__main__":
    main()
