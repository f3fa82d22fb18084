"""Images per second of eval's preprocessing and scoring against onnxruntime inference of ICNet at batch 1.

    python benchmarks/bench_eval.py [--images 8] [--size 1024x2048] [--repeat 3] [--no-inference] [--threads N]

On generated Cityscapes-layout images (``surgery data make cityscapes``, PNG, 1024×2048 by
default), each phase of ``surgery eval icnet`` is timed on its own, best of ``--repeat``
passes over the images:

- read + preprocess: PNG decode, ToTensor, Normalize (ICNet's guide mode) → 3×H×W float32;
- label: the labelIds PNG read and mapped to trainIds;
- score (ICNet): argmax of 19×H×W logits, the truncated-logit argmax of its pixAcc, the
  confusion matrix and the running figures; score (mmseg): argmax and confusion only;
- inference: ICNet (zoo export, seeded weights, ``prune_outputs outputs=logits``) at
  batch 1 on onnxruntime CPU, median of ``--repeat`` calls after one warm-up.

The issue's bar: scoring one image costs less than its inference (ratio < 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from surgery.models import RECIPES

from surgery.eval import metrics
from surgery.eval.datasets import open_dataset
from surgery.eval.generate import make_dataset
from surgery.eval.preprocess import Preprocessor


def best_per_image(fn: Callable[[], None], count: int, repeat: int) -> float:
    """Seconds per image: the best of ``repeat`` passes over ``count`` images."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / count


def icnet_inference(size: tuple[int, int], repeat: int, threads: int) -> tuple[float, str]:
    """Median seconds of one ICNet batch-1 call on onnxruntime CPU, and what ran."""
    import onnxruntime as ort
    from surgery.models import resolve_zoo_model

    import surgery

    path = resolve_zoo_model("icnet", input_shapes={"actual_input_1": (1, 3, *size)}, batch=1)
    model = surgery.apply(str(path), [("prune_outputs", {"outputs": "logits"})], verify=False).model
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"actual_input_1": np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)}
    session.run(None, feed)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times), f"icnet 1x3x{size[0]}x{size[1]}, seeded weights, ort-cpu threads={threads}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="generated images (8)")
    parser.add_argument("--size", default="1024x2048", help="image size HxW (1024x2048, the guide's)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per phase; best (median for inference)")
    parser.add_argument("--no-inference", action="store_true", help="skip ICNet (no torch export)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    args = parser.parse_args()
    h, w = (int(x) for x in args.size.lower().split("x"))

    folder = Path(tempfile.mkdtemp(prefix="surgery-bench-eval-"))
    start = time.perf_counter()
    make_dataset("cityscapes", folder / "cs", args.images, size=(h, w))
    print(f"generated {args.images} Cityscapes-layout images {h}x{w} in {time.perf_counter() - start:.1f} s "
          f"({folder / 'cs'})")
    ds = open_dataset("cityscapes", folder / "cs")
    pre = Preprocessor(RECIPES["icnet"].evaluation.guide.preprocessing)
    labels = [ds.read_label(s) for s in ds.samples]
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal((19, h, w), dtype=np.float32) * 3 for _ in range(min(2, args.images))]

    def preprocess() -> None:
        for s in ds.samples:
            pre(s.image)

    def read_labels() -> None:
        for s in ds.samples:
            ds.read_label(s)

    def score(kind: type[metrics.Scorer]) -> Callable[[], None]:
        def run() -> None:
            scorer = kind(19)
            for i, label in enumerate(labels):
                scorer.update(str(i), logits[i % len(logits)], label)
            scorer.result()
        return run

    rows = [("read + preprocess (ICNet guide)", best_per_image(preprocess, args.images, args.repeat)),
            ("label read + trainId map", best_per_image(read_labels, args.images, args.repeat)),
            ("score, ICNet metric", best_per_image(score(metrics.ICNetSegmentation), args.images, args.repeat)),
            ("score, mmseg metric", best_per_image(score(metrics.MMSegSegmentation), args.images, args.repeat))]
    inference, what = (None, "skipped") if args.no_inference else icnet_inference((h, w), args.repeat, args.threads)
    print(f"\n{'phase':<34}{'ms/image':>10}{'images/s':>10}{'/ inference':>13}")
    for name, sec in rows:
        ratio = f"{sec / inference:.3f}" if inference else "-"
        print(f"{name:<34}{sec * 1e3:>10.1f}{1 / sec:>10.2f}{ratio:>13}")
    if inference:
        print(f"{'inference (' + what + ')':<34}\n{'':<34}{inference * 1e3:>10.1f}{1 / inference:>10.2f}{1:>13.3f}")
        ok = all(sec < inference for name, sec in rows if name.startswith("score"))
        print(f"\nscoring an image costs {'less' if ok else 'MORE'} than its inference at batch 1")


if __name__ == "__main__":
    main()
