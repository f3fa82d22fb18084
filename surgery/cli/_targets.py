"""The table of targets the verbs run on, built with the zoo and pass registry handed to each.

One literal table: a target's name is its key, and adding a target is one line here.
"""

from __future__ import annotations

from surgery.passes import PASSES
from surgery.passes.fix_shapes import reshape_batch
from surgery.tools.ascend.targets import AisBenchTarget, AtcTarget
from surgery.tools.onnxruntime import OrtTarget
from surgery.tools.tensorrt.target import TrtexecTarget

from surgery.targets import Target

from ._common import zoo


def targets() -> dict[str, Target]:
    """Every target, keyed by name; each verb takes the ones that can do it."""
    z = zoo()
    return {
        "ort-cpu": OrtTarget("ort-cpu", zoo=z, registry=PASSES, reshaper=reshape_batch),
        "ort-cuda": OrtTarget("ort-cuda", zoo=z, registry=PASSES, reshaper=reshape_batch),
        "ort-trt": OrtTarget("ort-trt", zoo=z, registry=PASSES, reshaper=reshape_batch),
        "ais-bench": AisBenchTarget(),
        "trtexec": TrtexecTarget(zoo=z, registry=PASSES),
        "atc": AtcTarget(zoo=z, registry=PASSES),
    }


def names(verb: str) -> list[str]:
    """The names of the targets that do ``verb``, for help texts."""
    return [name for name, t in targets().items() if verb in t.honours]
