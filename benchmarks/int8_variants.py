"""Which static-quantization settings make the trained PP-OCRv4 detector faster on this CPU.

    python benchmarks/int8_variants.py [--calib 8] [--rounds 8]

Plain ``onnxruntime.quantization.quantize_static`` (QDQ) on the detector from the
``rapidocr-onnxruntime`` wheel (see ``bench_int8.py``), converted to opset 13 for per-channel
weights, after ``quant_pre_process``; each variant is timed against the float model in one
process, interleaved (rotating order, 3 calls per turn), and the median speed-up printed.
This is what chose ``quantize_int8``'s default of uint8 activations (U8S8): on the
reference host (an AVX-512 VNNI Xeon) S8S8 ran slower than float.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).parent))
import bench_int8 as B

VARIANTS = {
    "S8S8 per-tensor": {"activation_type": QuantType.QInt8},
    "S8S8 per-channel": {"per_channel": True, "activation_type": QuantType.QInt8},
    "U8S8 per-tensor": {"activation_type": QuantType.QUInt8},
    "U8S8 per-channel": {"per_channel": True, "activation_type": QuantType.QUInt8},
    "U8S8 per-channel reduce_range": {"per_channel": True, "reduce_range": True, "activation_type": QuantType.QUInt8},
    "U8S8 Conv only": {"op_types_to_quantize": ["Conv"], "activation_type": QuantType.QUInt8},
}


class _Reader(CalibrationDataReader):
    def __init__(self, name: str, feeds: list[np.ndarray]):
        self.items = iter([{name: f} for f in feeds])

    def get_next(self):
        return next(self.items, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="the rapidocr-onnxruntime wheel")
    parser.add_argument("--calib", type=int, default=8, help="calibration pages (8)")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved turns per model (8)")
    args = parser.parse_args()
    with zipfile.ZipFile(B.find_wheel(args.wheel)) as z:
        det = onnx.load_from_string(z.read(B.DET_MEMBER))
    if next(o.version for o in det.opset_import if o.domain in ("", "ai.onnx")) < 13:
        det = version_converter.convert_version(det, 13)
    feeds = [B.det_input(B.text_page(B.CALIB_SEED, k)).astype(np.float32) for k in range(args.calib)]
    name = B.model_input_name(det)
    tmp = tempfile.mkdtemp(prefix="surgery-int8-variants-")
    src, pre = os.path.join(tmp, "det.onnx"), os.path.join(tmp, "pre.onnx")
    onnx.save(det, src)
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    paths = {"float": src}
    for label, options in VARIANTS.items():
        out = os.path.join(tmp, label.replace(" ", "_") + ".onnx")
        started = time.perf_counter()
        quantize_static(pre, out, _Reader(name, feeds), quant_format=QuantFormat.QDQ, **options)
        print(f"{label}: quantized in {time.perf_counter() - started:.1f} s", flush=True)
        paths[label] = out
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sessions = {k: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    x = {name: feeds[0]}
    for s in sessions.values():
        for _ in range(3):
            s.run(None, x)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions.items())
    for r in range(args.rounds):
        for label, s in (order if r % 2 == 0 else order[::-1]):
            started = time.perf_counter()
            for _ in range(3):
                s.run(None, x)
            times[label].append((time.perf_counter() - started) / 3)
    base = float(np.median(times["float"]))
    print(f"\nPP-OCRv4 det 1x3x480x640, onnxruntime {ort.__version__}, median of {args.rounds} interleaved turns")
    for label, t in times.items():
        print(f"  {label:32s} {np.median(t) * 1e3:8.2f} ms   speed-up x{base / float(np.median(t)):.3f}")


if __name__ == "__main__":
    main()
