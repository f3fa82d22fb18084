"""What seeded-weight calibration changes: UNet++'s output spread and resize_nearest's figures on it.

    python benchmarks/calibration_figures.py [--size 96]

UNet++ is exported without a checkpoint twice, with the raw seeded weights and calibrated
(the zoo's default now), at 1x3xSIZExSIZE. For each: the output's std on verification's
three samples (normal, uniform, image) and within each image, then ``surgery.apply`` with
``resize_nearest`` (the guide's rewrite): max abs / max rel error, cosine, and the mask IoU
(logits > 0) of the rewritten model against the original on those samples.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def figures(path: Path, size: int) -> dict[str, object]:
    import onnx

    from surgery.api import apply
    from surgery.parity import Session, model_inputs, random_samples

    model = onnx.load(str(path))
    specs = model_inputs(model)
    samples = random_samples(specs, {specs[0].name: (1, 3, size, size)}, count=3, seed=0)
    before = Session(model.SerializeToString())
    result = apply(model, ["resize_nearest"], input_shapes={specs[0].name: (1, 3, size, size)})
    after = Session(result.model.SerializeToString())
    outs = [before.run(s.feed)["output1"] for s in samples]
    rewritten = [after.run(s.feed)["output1"] for s in samples]
    ious = []
    for a, b in zip(outs, rewritten, strict=True):
        union = np.logical_or(a > 0, b > 0).sum()
        ious.append(float(np.logical_and(a > 0, b > 0).sum() / union) if union else 1.0)
    parity = result.steps[0].figures["parity"]["outputs"]["output1"]
    return {
        "std": float(np.std(np.stack(outs))),
        "std_per_sample": {s.info["distribution"]: round(float(o.std()), 4) for s, o in zip(samples, outs,
                                                                                          strict=True)},
        "foreground": {s.info["distribution"]: round(float((o > 0).mean()), 3) for s, o in zip(samples, outs,
                                                                                             strict=True)},
        "max_abs": parity["max_abs"], "max_rel": parity["max_rel"], "cosine": parity["cosine"],
        "mismatches": f"{parity['mismatches']}/{parity['elements']}",
        "mask_iou": {s.info["distribution"]: round(i, 4) for s, i in zip(samples, ious, strict=True)},
        "verified": result.verification.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="input height and width (the guide's is 96)")
    args = parser.parse_args()
    from surgery.models import export_model

    folder = Path(tempfile.mkdtemp(prefix="surgery-calibration-"))
    shapes = {"actual_input_1": (1, 3, args.size, args.size)}
    for calibrate in (False, True):
        result = export_model("unetpp", folder / f"unetpp-{calibrate}.onnx", input_shapes=shapes, calibrate=calibrate)
        f = figures(result.path, args.size)
        print(f"UNet++ seeded, {'calibrated' if calibrate else 'raw (before calibration)'}:")
        for key, value in f.items():
            print(f"  {key:<15} {value}")


if __name__ == "__main__":
    main()
