"""INT8 under an accuracy budget: what ``quantize_int8`` buys on onnxruntime CPU, and what it costs the task.

    python benchmarks/bench_int8.py [--part ocr,zoo] [--models icnet,unetpp,cspresnext50,deeplabv3,hrnet_w18]
        [--wheel rapidocr_onnxruntime-*.whl] [--calib 32] [--judge 64] [--budget 0.99] [--fallback]
        [--max-time 20] [--precision 0.02] [--no-timing] [--json OUT.json]

Part 1, trained weights: the PP-OCRv4 text detector and recogniser inside the
``rapidocr-onnxruntime`` wheel (``pip download --no-deps rapidocr-onnxruntime -d DIR``; found
in ``--wheel``, ``$SURGERY_WHEELS`` or /work/cache/wheels), calibrated on text rendered with
Pillow (seeded: words, digits, fonts sizes, colours, noise) and judged on *other* rendered text:
the detector by the IoU of its probability map binarised at DB's 0.3 (int8 vs float), the
recogniser by exact-string agreement of the CTC decodes (int8 vs float) and each one's
accuracy against the rendered strings. With ``--fallback``, the budget (``--budget``, as
agreement) returns the most costly layers to float until it holds, and says which.

Part 2, the five zoo models at small input sizes with seeded weights whose BatchNorm
statistics are calibrated on generated pictures of each model's dataset kind (seeded random
weights alone give one class for every image, so agreement would mean nothing; the final
bias of UNet++ is set so that its raw-logit threshold 0.5 cuts the calibration pixels at the
median): task fidelity of INT8 against float (top-1 agreement, mask IoU, mIoU vs before, from
``surgery.eval.fidelity``) on generated images the quantizer did not calibrate on, what was
quantized, and quantization time.

Latency (both parts): float and INT8 measured in one process, interleaved in rotating rounds
(``surgery.bench.sweep``), the speed-up with its paired 95% interval (``surgery.pairing``).
Timing figures need a quiet machine; ``--no-timing`` skips them. Everything else is
deterministic for the given seeds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery.apply import apply
from surgery.budget import Budget, fallback
from surgery.parity import Session

WHEEL_GLOB = "rapidocr_onnxruntime-*.whl"
DET_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
REC_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"
DET_SHAPE = (1, 3, 480, 640)  # DB needs multiples of 32
REC_SHAPE = (1, 3, 48, 320)  # rapidocr's rec_img_shape
DB_THRESHOLD = 0.3  # rapidocr's Det.thresh
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
         "xray", "yankee", "zulu", "north", "south", "east", "west", "river", "station", "market", "bridge",
         "garden", "street", "avenue", "harbour", "centre")
ZOO_SHAPES = {"cspresnext50": (1, 3, 224, 224), "hrnet_w18": (1, 3, 224, 224), "unetpp": (1, 3, 96, 96),
              "icnet": (1, 3, 256, 512), "deeplabv3": (1, 3, 256, 512)}
CALIB_SEED, JUDGE_SEED, BN_SEED = 0, 10_000, 20_000


# ---------------------------------------------------------------------------
# rendered text


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _text(rng: np.random.Generator) -> str:
    words = " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))
    return words + (f" {int(rng.integers(0, 100000))}" if rng.random() < 0.6 else "")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(150, 255, 3)
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(-60, 60, 3)
    img = np.broadcast_to(base + ramp, (h, w, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(0, 4))):  # pale boxes: a page, a sign
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        bh, bw = int(rng.integers(h // 8 + 1, h // 2 + 2)), int(rng.integers(w // 8 + 1, w // 2 + 2))
        img[y:y + bh, x:x + bw] = rng.uniform(120, 255, 3)
    return img


def _to_uint8(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def text_line(seed: int, index: int, height: int = 48) -> tuple[np.ndarray, str]:
    """One rendered line of text (RGB uint8, ``height`` rows) and its string."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index])
    text, size = _text(rng), int(rng.integers(24, 36))
    font = _font(size)
    width = int(font.getlength(text)) + 16
    image = Image.fromarray(_background(rng, height, width).clip(0, 255).astype(np.uint8))
    ImageDraw.Draw(image).text((8, (height - size) // 2 - 2), text, font=font,
                               fill=tuple(int(v) for v in rng.integers(0, 90, 3)))
    return _to_uint8(np.asarray(image, np.float32), rng), text


def text_page(seed: int, index: int, shape: tuple[int, int] = DET_SHAPE[2:]) -> np.ndarray:
    """A page of 3-7 lines of text at random places and sizes (RGB uint8)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index])
    h, w = shape
    image = Image.fromarray(_background(rng, h, w).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    y = int(rng.integers(5, 40))
    while y < h - 40:
        size = int(rng.integers(18, 40))
        draw.text((int(rng.integers(5, w // 3)), y), _text(rng), font=_font(size),
                  fill=tuple(int(v) for v in rng.integers(0, 90, 3)))
        y += size + int(rng.integers(10, 60))
    return _to_uint8(np.asarray(image, np.float32), rng)


def _normalise_bgr(rgb: np.ndarray) -> np.ndarray:
    """rapidocr's preprocessing: cv2 BGR order, x/255, (x - 0.5) / 0.5, CHW."""
    x = rgb[..., ::-1].astype(np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)


def rec_input(rgb: np.ndarray) -> np.ndarray:
    """rapidocr's recogniser input: height 48 keeping the ratio, width at most 320, zero padding on the right."""
    from PIL import Image

    _, hh, ww = REC_SHAPE[1:]
    h, w = rgb.shape[:2]
    nw = min(ww, int(np.ceil(hh * w / h)))
    resized = np.asarray(Image.fromarray(rgb).resize((nw, hh), Image.BILINEAR))
    out = np.zeros(REC_SHAPE[1:], np.float32)
    out[:, :, :nw] = _normalise_bgr(resized)
    return out[None]


def det_input(rgb: np.ndarray) -> np.ndarray:
    return _normalise_bgr(rgb)[None]


def ctc_decode(probs: np.ndarray, chars: list[str]) -> str:
    """Greedy CTC: argmax per step, repeats collapsed, blanks (index 0) dropped."""
    idx = probs.argmax(-1).reshape(-1)
    keep = np.ones(idx.size, bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    return "".join(chars[i] for i in idx[keep] if i < len(chars))


# ---------------------------------------------------------------------------
# the budget's figures for the two OCR models (surgery.budget.Evaluator)


@dataclass
class DetAgreement:
    """IoU of the detector's probability maps binarised at DB's threshold, int8 vs float (summed over pages)."""

    feeds: list[np.ndarray]

    def bind(self, reference: onnx.ModelProto) -> Callable[[onnx.ModelProto], float]:
        expected = _run_all(reference, self.feeds)

        def score(model: onnx.ModelProto) -> float:
            return 1.0 if model is reference else det_iou(expected, _run_all(model, self.feeds))

        return score

    def describe(self) -> str:
        return f"detector map IoU at {DB_THRESHOLD} vs float on {len(self.feeds)} rendered pages"


@dataclass
class RecAgreement:
    """Exact-string agreement of the recogniser's CTC decodes, int8 vs float."""

    feeds: list[np.ndarray]
    chars: list[str]

    def bind(self, reference: onnx.ModelProto) -> Callable[[onnx.ModelProto], float]:
        expected = [ctc_decode(o, self.chars) for o in _run_all(reference, self.feeds)]

        def score(model: onnx.ModelProto) -> float:
            if model is reference:
                return 1.0
            got = [ctc_decode(o, self.chars) for o in _run_all(model, self.feeds)]
            return float(np.mean([a == b for a, b in zip(expected, got, strict=True)]))

        return score

    def describe(self) -> str:
        return f"exact-string agreement vs float on {len(self.feeds)} rendered lines"


def _run_all(model: onnx.ModelProto, feeds: list[np.ndarray]) -> list[np.ndarray]:
    session = Session(model)
    name = model_input_name(model)
    return [session.run({name: f})[session.output_names[0]] for f in feeds]


def model_input_name(model: onnx.ModelProto) -> str:
    inits = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def det_iou(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    inter = union = 0
    for b, a in zip(before, after, strict=True):
        mb, ma = b > DB_THRESHOLD, a > DB_THRESHOLD
        inter += int(np.count_nonzero(mb & ma))
        union += int(np.count_nonzero(mb | ma))
    return inter / union if union else 1.0


# ---------------------------------------------------------------------------
# quantize, judge, time


@dataclass
class Row:
    """One model's figures."""

    model: str
    input: str
    figures: dict[str, Any] = field(default_factory=dict)


def int8_pass(model: onnx.ModelProto, calib_dir: Path, samples: int, shape: tuple[int, ...],
              exclude_ops: tuple[str, ...] = ()) -> Any:
    from surgery.passes import QuantizeInt8

    name = model_input_name(model)
    return QuantizeInt8(calib=str(calib_dir), samples=samples, shapes=f"{name}:{'x'.join(map(str, shape))}",
                        exclude_ops=exclude_ops)


def quantize(model: onnx.ModelProto, calib_dir: Path, samples: int, shape: tuple[int, ...],
             exclude_ops: tuple[str, ...] = ()) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """quantize_int8 through surgery.apply (verified: checker, parity deviation)."""
    name = model_input_name(model)
    p = int8_pass(model, calib_dir, samples, shape, exclude_ops)
    started = time.perf_counter()
    result = apply(model, [p], samples=1, input_shapes={name: shape}, verify_batches=())
    seconds = time.perf_counter() - started
    step = result.steps[0]
    counts = step.counts
    info: dict[str, Any] = {
        "quantize_seconds": round(seconds, 2),
        "int8_nodes": sum(v for k, v in counts.items() if k.startswith("int8 ")),
        "float_nodes": sum(v for k, v in counts.items() if k.startswith("float ")),
        "int8": {k[5:]: v for k, v in counts.items() if k.startswith("int8 ")},
        "float": {k[6:]: v for k, v in counts.items() if k.startswith("float ")},
        "notes": [n for n in step.notes if n.startswith(("float:", "opset", "preprocessed", "calibrated"))],
    }
    return result.model, info


def with_fallback(model: onnx.ModelProto, int8: onnx.ModelProto, calib_dir: Path, samples: int,
                  shape: tuple[int, ...], budget: Budget, evaluator: Any, max_layers: int | None
                  ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """surgery.budget.fallback from the int8 model: layers back to float until ``budget`` holds (or the cap)."""
    p = int8_pass(model, calib_dir, samples, shape)
    scorer = evaluator.bind(model)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="surgery-int8-fallback-") as cache:
        out = fallback(p, budget, model, int8, scorer, scorer(model), max_layers=max_layers, cache_dir=cache)
        final = out.model
        if final is None:  # over budget even so: the variant with every layer it tried returned
            final = onnx.ModelProto()
            final.CopyFrom(model)
            p.keeping(out.kept, cache_dir=cache)(final)
    info = {"kept_float": out.kept, "holds": out.holds, "scans": out.scans,
            "trail": [round(f, 4) for _, f in out.trail], "fallback_seconds": round(time.perf_counter() - started, 1),
            "most_costly": [{"layer": c.layer, "gain": round(c.gain, 4)} for c in out.costs[:5]]}
    return final, info


def paired_latency(a: onnx.ModelProto, b: onnx.ModelProto, shape: tuple[int, ...], *, max_time: float,
                   precision: float) -> dict[str, Any]:
    """float (a) and int8 (b) measured interleaved in one process; B's speed-up with its paired interval."""
    from surgery.tools.onnxruntime import OrtOptions, run_jobs

    from surgery.bench import BenchModel, sweep
    from surgery.pairing import measured_together, speedup
    from surgery.targets.measure import Measure

    name = model_input_name(a)
    measure = Measure(warmup=3, max_time=max_time, precision=precision)
    records = sweep([BenchModel(a, OrtOptions(), "float"), BenchModel(b, OrtOptions(), "int8")], run_jobs,
                    target="ort-cpu", batches=[shape[0]], measure=measure, input_shapes={name: shape})
    fa, fb = records[0][0], records[1][0]
    ratio = speedup(fa, fb)
    return {"float_ms": fa.stats.get("median"), "int8_ms": fb.stats.get("median"),
            "speedup": ratio.to_dict() if ratio else None, "describe": ratio.describe() if ratio else fa.error,
            "verdict": ratio.verdict if ratio else None, "iterations": [fa.iterations, fb.iterations],
            "paired": measured_together(fa, fb)}


def write_arrays(folder: Path, arrays: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, a in enumerate(arrays):
        np.save(folder / f"sample_{k:05d}.npy", a)
    return folder


# ---------------------------------------------------------------------------
# part 1: PP-OCRv4


def find_wheel(given: str | None) -> Path:
    candidates = [given] if given else []
    for folder in (os.environ.get("SURGERY_WHEELS"), "/work/cache/wheels", "."):
        if folder:
            candidates += sorted(glob.glob(os.path.join(folder, WHEEL_GLOB)))
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    sys.exit("rapidocr-onnxruntime wheel not found: pip download --no-deps rapidocr-onnxruntime -d DIR, "
             "then --wheel DIR/rapidocr_onnxruntime-*.whl")


def ocr_part(args: argparse.Namespace, work: Path) -> list[Row]:
    wheel = find_wheel(args.wheel)
    with zipfile.ZipFile(wheel) as z:
        det = onnx.load_from_string(z.read(DET_MEMBER))
        rec = onnx.load_from_string(z.read(REC_MEMBER))
    chars = ["blank", *next(p.value for p in rec.metadata_props if p.key == "character").splitlines(), " "]
    rows = []

    det_calib = write_arrays(work / "det_calib", [det_input(text_page(CALIB_SEED, k)) for k in range(args.calib)])
    det_judge = [det_input(text_page(JUDGE_SEED, k)) for k in range(args.judge)]
    lines = [text_line(JUDGE_SEED, k) for k in range(args.judge)]
    rec_calib = write_arrays(work / "rec_calib", [rec_input(text_line(CALIB_SEED, k)[0]) for k in range(args.calib)])
    rec_judge = [rec_input(img) for img, _ in lines]
    truth = [t for _, t in lines]

    small = args.fallback_judge
    cases = [("PP-OCRv4 det", det, det_calib, DET_SHAPE, DetAgreement(det_judge), DetAgreement(det_judge[:small]), ()),
             ("PP-OCRv4 rec", rec, rec_calib, REC_SHAPE, RecAgreement(rec_judge, chars),
              RecAgreement(rec_judge[:small], chars), ())]
    if args.rec_float_ops:  # the recogniser again with these op types left in float (exclude_ops=)
        ops = tuple(args.rec_float_ops.split(","))
        cases.append((f"PP-OCRv4 rec, {'+'.join(ops)} in float", rec, rec_calib, REC_SHAPE,
                      RecAgreement(rec_judge, chars), RecAgreement(rec_judge[:small], chars), ops))
    if args.only_variant:
        cases = cases[2:]
    for name, model, calib, shape, evaluator, scan, float_ops in cases:
        row = Row(name, "x".join(map(str, shape)))
        int8, info = quantize(model, calib, args.calib, shape, float_ops)
        row.figures.update(info)
        row.figures["agreement"] = evaluator.bind(model)(int8)
        if "rec" in name:
            decoded = {"float": [ctc_decode(o, chars) for o in _run_all(model, rec_judge)],
                       "int8": [ctc_decode(o, chars) for o in _run_all(int8, rec_judge)]}
            row.figures["text_accuracy"] = {k: float(np.mean([d.strip() == t for d, t in zip(v, truth, strict=True)]))
                                            for k, v in decoded.items()}
        if args.fallback:
            # the scan judges on the first --fallback-judge samples (one quantization and judgement per layer);
            # the agreement reported is on all of them
            kept, fell = with_fallback(model, int8, calib, args.calib, shape, Budget("agreement", args.budget), scan,
                                       args.fallback_layers)
            row.figures["with_fallback"] = {"agreement": evaluator.bind(model)(kept), **fell}
            if not args.no_timing:
                row.figures["with_fallback"]["latency"] = paired_latency(model, kept, shape, max_time=args.max_time,
                                                                         precision=args.precision)
        if not args.no_timing:
            row.figures["latency"] = paired_latency(model, int8, shape, max_time=args.max_time,
                                                    precision=args.precision)
        rows.append(row)
        print_row(row)
    return rows


# ---------------------------------------------------------------------------
# part 2: the zoo with BN-calibrated seeded weights


def calibrated_export(name: str, shape: tuple[int, ...], out: Path, images: int = 8) -> onnx.ModelProto:
    """Export zoo model ``name`` with seeded weights whose BatchNorm statistics are set on generated pictures."""
    import torch
    from surgery.models import export_model, get_recipe, network_module, resolve_variants

    from surgery.eval.fidelity import TaskSpec, generated_feeds

    recipe = get_recipe(name)
    module = network_module(name)
    torch.manual_seed(0)
    net = module.build(resolve_variants(recipe))
    feeds = generated_feeds(TaskSpec(recipe), shape, images, BN_SEED)
    x = torch.from_numpy(np.concatenate([a for _, a in feeds]))
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    net.eval()
    for bn in bns:  # cumulative statistics of these pictures, dropout and the rest stay in eval mode
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for start in range(0, len(x), 2):
            net(x[start:start + 2])
        net.eval()
        if name == "unetpp":  # the guide thresholds raw logits at 0.5: cut the pictures' pixels at the median
            logits = net(x)
            net.final.bias += 0.5 - logits.median()
    ckpt = out.with_suffix(".pth")
    torch.save(net.state_dict(), ckpt)
    inp = recipe.inputs[0].name
    dims = ("N", *shape[1:]) if recipe.dynamic_batch else shape
    export_model(name, out, checkpoint=ckpt, input_shapes={inp: dims})
    return onnx.load(str(out))


def zoo_part(args: argparse.Namespace, work: Path) -> list[Row]:
    from surgery.models import get_recipe

    from surgery.budget_eval import RecipeAgreement
    from surgery.eval.fidelity import TaskSpec, generated_feeds, output_name

    rows = []
    for name in args.models:
        shape = ZOO_SHAPES[name]
        recipe = get_recipe(name)
        row = Row(name, "x".join(map(str, shape)))
        started = time.perf_counter()
        model = calibrated_export(name, shape, work / f"{name}.onnx")
        row.figures["export_seconds"] = round(time.perf_counter() - started, 1)
        task = TaskSpec(recipe)
        calib = write_arrays(work / f"{name}_calib", [a for _, a in generated_feeds(task, shape, args.calib,
                                                                                    CALIB_SEED)])
        int8, info = quantize(model, calib, args.calib, shape)
        row.figures.update(info)
        row.figures["fidelity"] = fidelity(model, int8, task, shape, args.judge)
        judge = RecipeAgreement(recipe, samples=args.fallback_judge, seed=JUDGE_SEED)  # the per-layer scan's figure
        if args.fallback and row.figures["fidelity"][task.agreement().primary] < args.budget:
            kept, fell = with_fallback(model, int8, calib, args.calib, shape, Budget("agreement", args.budget),
                                       judge, args.fallback_layers)
            row.figures["with_fallback"] = {"fidelity": fidelity(model, kept, task, shape, args.judge), **fell}
        if not args.no_timing:
            row.figures["latency"] = paired_latency(model, int8, shape, max_time=args.max_time,
                                                    precision=args.precision)
        row.figures["output"] = output_name([o.name for o in model.graph.output], task.output)
        rows.append(row)
        print_row(row)
    return rows


def fidelity(before: onnx.ModelProto, after: onnx.ModelProto, task: Any, shape: tuple[int, ...],
             count: int) -> dict[str, float]:
    """surgery.eval's after-vs-before agreement on generated images the quantizer did not calibrate on."""
    from surgery.eval.fidelity import generated_feeds, output_name

    feeds = generated_feeds(task, shape, count, JUDGE_SEED)
    name = model_input_name(before)
    sb, sa = Session(before), Session(after)
    out = output_name(sb.output_names, task.output)
    agreement = task.agreement()
    answers: set[int] = set()
    margins: list[float] = []
    for sample_id, array in feeds:
        b, a = sb.run({name: array})[out], sa.run({name: array})[out]
        agreement.update(sample_id, b[0], a[0])
        answers |= _answers(b[0])
        margins.append(_margin(b[0]))
    result = {k: round(float(v), 5) for k, v in agreement.result().items()}
    result["distinct_float_answers"] = len(answers)  # a degenerate model agrees with anything
    # how far the float model's decisions are from flipping: top-1 minus top-2 score (per pixel for maps), or the
    # raw logit's distance to the 0.5 threshold; beside max_abs it says how much int8 error the task can absorb
    result["median_float_margin"] = round(float(np.median(margins)), 5)
    return result


def _margin(output: np.ndarray) -> float:
    if output.ndim == 1 or (output.ndim == 3 and output.shape[0] > 1):
        top2 = np.sort(output, axis=0)[-2:]
        return float(np.median(top2[1] - top2[0]))
    return float(np.median(np.abs(output - 0.5)))


def _answers(output: np.ndarray) -> set[int]:
    """What the float model decided on one image: its class, the classes in its map, or its mask's coverage."""
    if output.ndim == 1:
        return {int(output.argmax())}
    if output.ndim == 3 and output.shape[0] > 1:
        return set(np.unique(output.argmax(0)).tolist())
    return {int(np.mean(output > 0.5) * 20)}  # binary: coverage in 5% steps


# ---------------------------------------------------------------------------


def print_row(row: Row) -> None:
    f = row.figures
    parts = [f"{row.model} [{row.input}]", f"int8 nodes {f.get('int8_nodes')}", f"float {f.get('float_nodes')}",
             f"quantize {f.get('quantize_seconds')} s"]
    if "agreement" in f:
        parts.append(f"agreement {f['agreement']:.4f}")
    if "text_accuracy" in f:
        parts.append(f"text accuracy float {f['text_accuracy']['float']:.3f} int8 {f['text_accuracy']['int8']:.3f}")
    if "fidelity" in f:
        parts.append("fidelity " + ", ".join(f"{k} {v}" for k, v in f["fidelity"].items()))
    if "latency" in f:
        lat = f["latency"]
        parts.append(f"float {lat['float_ms']:.2f} ms, int8 {lat['int8_ms']:.2f} ms, speed-up {lat['describe']} "
                     f"{lat['verdict']}")
    if "with_fallback" in f:
        w = f["with_fallback"]
        parts.append(f"fallback: {len(w.get('kept_float', []))} layer(s) to float {w.get('kept_float')}, holds "
                     f"{w.get('holds')}, trail {w.get('trail')}, most costly {w.get('most_costly')}, "
                     + (f"agreement {w['agreement']:.4f}" if "agreement" in w else f"fidelity {w.get('fidelity')}"))
    print(" | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="ocr,zoo", help="ocr, zoo or both (ocr,zoo)")
    parser.add_argument("--models", default=",".join(ZOO_SHAPES), help="zoo models for part 2")
    parser.add_argument("--wheel", help="the rapidocr-onnxruntime wheel (default: $SURGERY_WHEELS, /work/cache/wheels)")
    parser.add_argument("--calib", type=int, default=32, help="calibration samples (32)")
    parser.add_argument("--judge", type=int, default=64, help="judging samples, other seeds (64)")
    parser.add_argument("--budget", type=float, default=0.99, help="agreement budget for --fallback (0.99)")
    parser.add_argument("--fallback", action="store_true", help="also quantize under the budget with fallback")
    parser.add_argument("--fallback-layers", type=int, default=None, help="return at most N layers")
    parser.add_argument("--fallback-judge", type=int, default=16,
                        help="samples the fallback's per-layer scan judges on (16; the final figure uses --judge)")
    parser.add_argument("--max-time", type=float, default=20.0, help="seconds of interleaved timing per model (20)")
    parser.add_argument("--precision", type=float, default=0.02, help="stop timing at this half-width (0.02)")
    parser.add_argument("--rec-float-ops", default="", metavar="OPS",
                        help="also quantize the recogniser with these op types left in float (e.g. MatMul)")
    parser.add_argument("--only-variant", action="store_true", help="with --rec-float-ops: only that row")
    parser.add_argument("--no-timing", action="store_true", help="skip latency (figures that need a quiet host)")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(ZOO_SHAPES))
    if unknown:
        sys.exit(f"unknown zoo models: {', '.join(unknown)}")
    parts = set(args.part.split(","))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="surgery-int8-bench-") as tmp:
        if "ocr" in parts:
            rows += ocr_part(args, Path(tmp))
        if "zoo" in parts:
            rows += zoo_part(args, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
