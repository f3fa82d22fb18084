"""What verification costs on long Conv+Relu chains: the extra batch sizes and the sample distributions.

    python benchmarks/bench_verify.py [--sizes 20000] [--repeat 3]

All runs go through the CLI entry point in-process (loading, digests, passes, checker, shape
inference, parity, tables, atomic save and record), on the chain of ``bench_apply.py``, and are
reported as best-of-N seconds and as a ratio to ``onnx.load`` + ``onnx.save`` of the same file:

(a) onnx load + save;
(b) ``apply --pass eliminate_dead_code --pass prune_outputs outputs=0 --no-verify``;
(c) the same, verified (3 samples: normal, uniform, image);
(d) the same, verified with ``--distributions uniform`` (the old sampling);
(e) ``apply --pass fix_shapes batch=dynamic``: verified, the freed batch proven at 2 and 3;
(f) the same with ``--verify-batches none`` (batch 1 only; the step is then unverified).

(c) / (d) is the cost of the distributions, (e) / (f) that of the extra batch sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apply import best_of, chain

PRUNE = ("--pass", "eliminate_dead_code", "--pass", "prune_outputs", "outputs=0")
FREE = ("--pass", "fix_shapes", "batch=dynamic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000", help="node counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from surgery.cli.main import main as surgery

    tmp = Path(tempfile.mkdtemp(prefix="surgery-bench-verify-"))
    for n in (int(s) for s in args.sizes.split(",")):
        src = tmp / f"chain{n}.onnx"
        onnx.save(chain(n), src)

        def cli(*argv: str, src: Path = src) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                rc = surgery(["apply", str(src), *argv, "-o", str(tmp / "out.onnx"), "--record", str(tmp / "r.json")])
            assert rc == 0, argv

        rows = [
            ("(a) onnx load+save", lambda src=src: onnx.save(onnx.load(src), tmp / "out.onnx")),
            ("(b) apply, --no-verify", lambda cli=cli: cli(*PRUNE, "--no-verify")),
            ("(c) apply, verified (3 distributions)", lambda cli=cli: cli(*PRUNE)),
            ("(d) apply, verified (uniform only)", lambda cli=cli: cli(*PRUNE, "--distributions", "uniform")),
            ("(e) fix_shapes batch=dynamic, batches 1,2,3", lambda cli=cli: cli(*FREE)),
            ("(f) fix_shapes batch=dynamic, batch 1 only", lambda cli=cli: cli(*FREE, "--verify-batches", "none")),
        ]
        rows[1][1]()  # warm-up: imports and first-call costs belong to no row
        times = {label: best_of(fn, args.repeat) for label, fn in rows}
        base = times["(a) onnx load+save"]
        print(f"{n} nodes (best of {args.repeat}):")
        for label, seconds in times.items():
            print(f"  {label:<46} {seconds:8.3f} s  {seconds / base:6.1f}x load+save", flush=True)
        c, d = times["(c) apply, verified (3 distributions)"], times["(d) apply, verified (uniform only)"]
        e, f = times["(e) fix_shapes batch=dynamic, batches 1,2,3"], times["(f) fix_shapes batch=dynamic, batch 1 only"]
        print(f"  distributions: (c)/(d) = {c / d:.2f}x; extra batch sizes: (e)/(f) = {e / f:.2f}x")


if __name__ == "__main__":
    main()
