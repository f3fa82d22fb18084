"""Task-level fidelity of rewrites: UNet++ resize_nearest, ICNet's PPM variants, and a trained text detector.

    python benchmarks/fidelity.py [--only unetpp,icnet,ocr] [--samples 16] [--icnet-size 1024x2048]
                                  [--ocr-images 8] [--json FILE]

Three sections, each "after vs before" on the task's own terms (surgery.eval.fidelity):

- unetpp: ``resize_nearest preset=torch`` on the UNet++ zoo export (the Ascend patch), on
  generated DSB2018-like images; mask IoU and pixel agreement at the guide's threshold (raw
  logits > 0.5) and upstream's (sigmoid > 0.5).
- icnet: the zoo's ``ppm=ascend`` export (the guide's fixed-kernel pooling) against
  ``ppm=exact``, full-resolution logits, on generated street scenes: mIoU of the label maps
  and pixel agreement.
- ocr: PP-OCRv4 text detection and recognition from the ``rapidocr-onnxruntime`` wheel
  (trained weights), on text rendered with Pillow over generated backgrounds.
  Detector: IoU of the binarised probability map (> 0.3, RapidOCR's threshold) before vs
  after ``resize_nearest`` and ``fix_shapes`` + ``simplify``. Recogniser: exact-string
  agreement of the CTC greedy decode (the wheel's character list) before vs after
  ``fix_shapes`` + ``simplify``, and each one's accuracy against the rendered strings.
  The wheel: ``$SURGERY_RAPIDOCR_WHEEL`` (a .whl, or a folder holding one), else
  ``~/.cache/surgery/wheels``, else ``pip download --no-deps rapidocr-onnxruntime`` there.

The zoo models carry the weights ``resolve_zoo_model`` gives (seeded unless a checkpoint is
passed; the export's notice is printed): their figures show how far a rewrite moves a
network of that architecture, not a trained one. The OCR section rests on trained weights.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import surgery
from surgery.eval import images
from surgery.eval.fidelity import FidelityInstrument
from surgery.eval.generate import image_rng, object_picture
from surgery.parity import Session

WHEEL_ENV = "SURGERY_RAPIDOCR_WHEEL"
WHEEL_CACHE = Path("~/.cache/surgery/wheels").expanduser()
DET_SIZE = (736, 960)  # RapidOCR's limit_side_len 736 (min side), both sides multiples of 32: no resize
DET_THRESH = 0.3
REC_SHAPE = (48, 320)


def export_notices(path: Path) -> list[str]:
    try:
        return json.loads(path.with_suffix(".json").read_text()).get("notices", [])
    except (OSError, ValueError):
        return []


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  " + "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in
                              enumerate(zip(r, widths, strict=True))))


def fmt(x: float) -> str:
    return f"{x:.4f}"


def sites(steps: list[Any]) -> str:
    """What each pass did, short: ``resize_nearest: no sites; simplify: -178 nodes``."""
    parts = []
    for s in steps:
        if not s.counts:
            parts.append(f"{s.name}: no sites")
        elif "nodes_removed" in s.counts:
            parts.append(f"{s.name}: -{s.counts['nodes_removed']} nodes")
        else:
            parts.append(f"{s.name}: " + ", ".join(f"{k} {v}" for k, v in s.counts.items()))
    return "; ".join(parts)


def resize_modes(path: Path) -> str:
    modes = [next((onnx.helper.get_attribute_value(a).decode() for a in n.attribute if a.name == "mode"), "nearest")
             for n in onnx.load(str(path)).graph.node if n.op_type == "Resize"]
    return ", ".join(f"{modes.count(m)} {m}" for m in sorted(set(modes))) or "none"


# ---------------------------------------------------------------------------
# zoo sections


def section_unetpp(samples: int) -> dict[str, Any]:
    from surgery.models import RECIPES, resolve_zoo_model

    path = resolve_zoo_model("unetpp")
    notices = export_notices(path)
    result = surgery.apply(str(path), [("resize_nearest", {"preset": "torch"})], verify=False)
    before, after = onnx.load(str(path)), result.model
    out: dict[str, Any] = {"weights": notices or ["checkpoint"], "sites": result.steps[0].counts}
    print(f"\n[unetpp] resize_nearest preset=torch: {result.steps[0].counts} ({'; '.join(notices) or 'checkpoint'})")
    rows = []
    for mode in ("guide", "upstream"):
        r = FidelityInstrument(RECIPES["unetpp"], samples=samples, mode=mode).compare(before, after)
        out[mode] = r.metrics
        rows.append((f"{mode} ({'raw > 0.5' if mode == 'guide' else 'sigmoid > 0.5'})", fmt(r.metrics["mask_IoU"]),
                     fmt(r.metrics["pixel_agreement"]), f"{r.metrics['max_abs']:.3g}"))
    table(rows, ("threshold", "mask IoU", "pixel agr.", "max |Δ|"))
    return out


def section_icnet(samples: int, size: tuple[int, int]) -> dict[str, Any]:
    from surgery.models import RECIPES, resolve_zoo_model

    shapes = {"actual_input_1": (1, 3, *size)}
    models = {}
    notices: list[str] = []
    for ppm in ("exact", "ascend"):
        path = resolve_zoo_model("icnet", variants={"ppm": ppm}, input_shapes=shapes, batch=1)
        notices = export_notices(path)
        models[ppm] = surgery.apply(str(path), [("prune_outputs", {"outputs": "logits"})], verify=False).model
    print(f"\n[icnet] ppm=ascend vs ppm=exact at {size[0]}x{size[1]}, {samples} generated street scenes "
          f"({'; '.join(notices) or 'checkpoint'})")
    start = time.perf_counter()
    inst = FidelityInstrument(RECIPES["icnet"], samples=samples)
    r = inst.compare(models["exact"], models["ascend"])
    worst = r.worst(3)
    table([("mIoU vs exact", fmt(r.metrics["mIoU"])), ("pixel agreement", fmt(r.metrics["pixel_agreement"])),
           ("max |Δ logit|", f"{r.metrics['max_abs']:.3g}"),
           ("worst image mIoU", ", ".join(f"{w['id']} {w['mIoU']:.3f}" for w in worst))], ("figure", "value"))
    print(f"  ({time.perf_counter() - start:.0f} s)")
    return {"weights": notices or ["checkpoint"], "size": list(size), "metrics": r.metrics, "worst": worst}


# ---------------------------------------------------------------------------
# OCR


def find_wheel() -> Path:
    given = os.environ.get(WHEEL_ENV)
    if given:
        p = Path(given).expanduser()
        found = [p] if p.is_file() else sorted(p.glob("rapidocr_onnxruntime-*.whl"))
        if not found:
            sys.exit(f"{WHEEL_ENV}={given}: no rapidocr_onnxruntime wheel there")
        return found[-1]
    cached = sorted(glob.glob(str(WHEEL_CACHE / "rapidocr_onnxruntime-*.whl")))
    if cached:
        return Path(cached[-1])
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    print(f"  downloading rapidocr-onnxruntime into {WHEEL_CACHE} (pip download --no-deps)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "rapidocr-onnxruntime", "-d",
                    str(WHEEL_CACHE)], check=True)
    return Path(sorted(glob.glob(str(WHEEL_CACHE / "rapidocr_onnxruntime-*.whl")))[-1])


def extract(wheel: Path, folder: Path) -> tuple[Path, Path]:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        det = next(n for n in names if n.endswith("_det_infer.onnx"))
        rec = next(n for n in names if n.endswith("_rec_infer.onnx"))
        z.extract(det, folder)
        z.extract(rec, folder)
    return folder / det, folder / rec


def characters(rec: Path) -> list[str]:
    """The CTC alphabet: blank, the wheel's character list (model metadata), space."""
    meta = {p.key: p.value for p in onnx.load(str(rec), load_external_data=False).metadata_props}
    return ["<blank>", *meta["character"].splitlines(), " "]


def font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 bundles a scalable font
    except (TypeError, OSError):
        for path in glob.glob("/usr/share/fonts/**/DejaVuSans.ttf", recursive=True):
            return ImageFont.truetype(path, size)
        sys.exit("no scalable font: Pillow >= 10.1 with FreeType, or DejaVuSans.ttf, is needed to render text")


def render(index: int) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """A 736x960 RGB page of 4-7 text lines on a generated background, and each line's text and box."""
    from PIL import Image, ImageDraw

    rng = image_rng(1000, index)
    h, w = DET_SIZE
    background = object_picture(rng, h, w).astype(np.float32)
    page = Image.fromarray((background * 0.35 + 165).clip(0, 255).astype(np.uint8))  # light, textured
    draw = ImageDraw.Draw(page)
    lines = []
    y = int(rng.integers(20, 60))
    alphabet = string.ascii_letters + string.digits
    while y < h - 80 and len(lines) < 7:
        size = int(rng.integers(26, 44))
        words = ["".join(rng.choice(list(alphabet), int(rng.integers(3, 8)))) for _ in range(int(rng.integers(1, 3)))]
        text = " ".join(words)
        x = int(rng.integers(20, 200))
        f = font(size)
        box = draw.textbbox((x, y), text, font=f)
        if box[2] >= w - 10 or (box[2] - box[0]) / max(1, box[3] - box[1]) > REC_SHAPE[1] / REC_SHAPE[0] - 0.8:
            y += size
            continue
        ink = tuple(int(v) for v in rng.integers(0, 70, 3))
        draw.text((x, y), text, font=f, fill=ink)
        lines.append((text, box))
        y = box[3] + int(rng.integers(25, 60))
    return np.asarray(page), lines


def det_input(rgb: np.ndarray) -> np.ndarray:
    bgr = rgb[..., ::-1].astype(np.float32)  # RapidOCR reads with cv2: BGR
    return ((bgr / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)


def rec_input(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = rgb[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4][..., ::-1]
    h, w = REC_SHAPE
    width = min(w, int(np.ceil(h * crop.shape[1] / crop.shape[0])))
    resized = images.resize_cv2_linear(np.ascontiguousarray(crop), (h, width)).astype(np.float32)
    out = np.zeros((3, h, w), np.float32)  # RapidOCR pads the right with zeros after normalising
    out[:, :, :width] = ((resized / 255 - 0.5) / 0.5).transpose(2, 0, 1)
    return out[None]


def ctc_greedy(probs: np.ndarray, alphabet: list[str]) -> str:
    index = probs[0].argmax(axis=-1)
    keep = np.ones_like(index, bool)
    keep[1:] = index[1:] != index[:-1]
    return "".join(alphabet[i] for i in index[keep] if i != 0)


def run_model(model: onnx.ModelProto | Path, feeds: list[np.ndarray]) -> list[np.ndarray]:
    session = Session(model if isinstance(model, onnx.ModelProto) else onnx.load(str(model)))
    name = session.session.get_inputs()[0].name
    return [next(iter(session.run({name: f}).values())) for f in feeds]


def mask_agreement(before: list[np.ndarray], after: list[np.ndarray]) -> dict[str, float]:
    inter = union = agree = total = 0
    max_abs = 0.0
    for b, a in zip(before, after, strict=True):
        mb, ma = b > DET_THRESH, a > DET_THRESH
        inter += int(np.count_nonzero(mb & ma))
        union += int(np.count_nonzero(mb | ma))
        agree += int(np.count_nonzero(mb == ma))
        total += mb.size
        max_abs = max(max_abs, float(np.abs(a.astype(np.float64) - b).max()))
    return {"mask_IoU": inter / union if union else 1.0, "pixel_agreement": agree / total, "max_abs": max_abs}


def section_ocr(n_images: int) -> dict[str, Any]:
    wheel = find_wheel()
    folder = Path(tempfile.mkdtemp(prefix="surgery-ocr-"))
    det_path, rec_path = extract(wheel, folder)
    alphabet = characters(rec_path)
    print(f"\n[ocr] {wheel.name}: {det_path.name}, {rec_path.name} ({len(alphabet) - 2} characters); "
          f"{n_images} rendered pages {DET_SIZE[0]}x{DET_SIZE[1]}")
    pages = [render(i) for i in range(n_images)]
    det_feeds = [det_input(rgb) for rgb, _ in pages]
    lines = [(text, rec_input(rgb, box)) for rgb, boxes in pages for text, box in boxes]
    out: dict[str, Any] = {"wheel": wheel.name, "pages": n_images, "lines": len(lines)}

    det_before = run_model(det_path, det_feeds)
    found = hit = 0
    for (_, boxes), prob in zip(pages, det_before, strict=True):
        mask = prob[0, 0] > DET_THRESH
        for _, (x0, y0, x1, y1) in boxes:
            found += 1
            hit += bool(mask[y0:y1, x0:x1].mean() > 0.2)
    print(f"  Resize nodes: detector {resize_modes(det_path)}; recogniser {resize_modes(rec_path)}")
    print(f"  detector (trained) marks {hit}/{found} rendered lines as text (> 20% of the box above {DET_THRESH})")
    out["det_lines_found"] = [hit, found]
    det_rewrites = {
        "resize_nearest": [("resize_nearest", {})],
        "fix_shapes + simplify": [("fix_shapes", {"shapes": f"x:1x3x{DET_SIZE[0]}x{DET_SIZE[1]}"}), ("simplify", {})],
    }
    rows = []
    for label, passes in det_rewrites.items():
        result = surgery.apply(str(det_path), passes, verify=False)
        counts = sites(result.steps)
        figures = mask_agreement(det_before, run_model(result.model, det_feeds))
        out[f"det {label}"] = {**figures, "changed": result.changed, "counts": counts}
        rows.append((label, counts, fmt(figures["mask_IoU"]), fmt(figures["pixel_agreement"]),
                     f"{figures['max_abs']:.3g}"))
    print("  detector: binarised map (> 0.3) after vs before")
    table(rows, ("rewrite", "sites", "mask IoU", "pixel agr.", "max |Δ prob|"))

    rec_feeds = [f for _, f in lines]
    truth = [t for t, _ in lines]
    before_text = [ctc_greedy(p, alphabet) for p in run_model(rec_path, rec_feeds)]
    rows = [("(before)", "-", "-", f"{np.mean([a == t for a, t in zip(before_text, truth, strict=True)]):.4f}")]
    rec_rewrites = {
        "fix_shapes + simplify": [("fix_shapes", {"shapes": f"x:1x3x{REC_SHAPE[0]}x{REC_SHAPE[1]}"}), ("simplify", {})],
        "resize_nearest": [("resize_nearest", {})],
    }
    out["rec_accuracy_before"] = float(np.mean([a == t for a, t in zip(before_text, truth, strict=True)]))
    for label, passes in rec_rewrites.items():
        result = surgery.apply(str(rec_path), passes, verify=False)
        counts = sites(result.steps)
        after_text = [ctc_greedy(p, alphabet) for p in run_model(result.model, rec_feeds)]
        agree = float(np.mean([a == b for a, b in zip(after_text, before_text, strict=True)]))
        acc = float(np.mean([a == t for a, t in zip(after_text, truth, strict=True)]))
        out[f"rec {label}"] = {"string_agreement": agree, "accuracy_after": acc, "counts": counts}
        rows.append((label, counts, fmt(agree), fmt(acc)))
    print(f"  recogniser: CTC greedy strings on {len(lines)} rendered lines")
    table(rows, ("rewrite", "sites", "exact-string agr.", "accuracy vs text"))
    examples = list(zip(truth, before_text, strict=True))[:3]
    print("  e.g. " + "; ".join(f"{t!r} → {b!r}" for t, b in examples))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="unetpp,icnet,ocr", help="sections, comma-separated")
    parser.add_argument("--samples", type=int, default=16, help="generated images per zoo comparison (16)")
    parser.add_argument("--icnet-samples", type=int, default=4, help="ICNet images (4: each costs two inferences)")
    parser.add_argument("--icnet-size", default="1024x2048", help="ICNet input HxW (1024x2048, the guide's)")
    parser.add_argument("--ocr-images", type=int, default=8, help="rendered pages (8)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    figures: dict[str, Any] = {}
    if "unetpp" in sections:
        figures["unetpp"] = section_unetpp(args.samples)
    if "icnet" in sections:
        h, w = (int(v) for v in args.icnet_size.lower().split("x"))
        figures["icnet"] = section_icnet(args.icnet_samples, (h, w))
    if "ocr" in sections:
        figures["ocr"] = section_ocr(args.ocr_images)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=float) + "\n")
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
