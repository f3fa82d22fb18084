"""surgery: ONNX graph surgery, verification, compilation and benchmarking.

    import surgery
    result = surgery.apply("model.onnx", ["eliminate_dead_code", ("prune_outputs", {"outputs": "0"})])
    surgery.save_model(result.model, "model.pruned.onnx")
"""

from __future__ import annotations

__version__ = "0.1.0"

from surgery.api import apply, builtin_targets, run_model
from surgery.apply import ApplyResult
from surgery.errors import (
    ModelLoadError,
    ModelSaveError,
    PassError,
    SurgeryError,
    ToolError,
    ToolNotFoundError,
    UsageError,
    VerificationError,
)
from surgery.graph import load_model, load_model_file, model_digest, save_model, summarize
from surgery.pass_infra import Pass, PassResult, option
from surgery.pipeline import Instrument, Pipeline

__all__ = [
    "ApplyResult",
    "Instrument",
    "ModelLoadError",
    "ModelSaveError",
    "Pass",
    "PassError",
    "PassResult",
    "Pipeline",
    "SurgeryError",
    "ToolError",
    "ToolNotFoundError",
    "UsageError",
    "VerificationError",
    "__version__",
    "apply",
    "builtin_targets",
    "load_model",
    "load_model_file",
    "model_digest",
    "option",
    "run_model",
    "save_model",
    "summarize",
]
