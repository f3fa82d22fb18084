"""Instruments: verification, timing and snapshots around each pass.

- CheckModel: the onnx checker.
- InferShapes: onnx shape inference in strict mode.
- NumericParity: onnxruntime, the model before vs after each pass on N seeded random
  samples plus any real samples. An exact pass that breaks parity fails the run; an
  inexact pass reports its deviation.
- Snapshot: save the model after each pass.

Checker and shape-inference failures are blamed on a pass only when the model passed
before it: a model that was already invalid does not fail every pass that follows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery.errors import VerificationError, first_line
from surgery.graph import EXTERNAL_DATA_THRESHOLD, save_model
from surgery.parity import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    OutputDiff,
    Session,
    compare_arrays,
    model_inputs,
    random_feed,
    resolve_shapes,
)
from surgery.pass_infra import Pass, PassResult
from surgery.pipeline import Instrument, StepReport
from surgery.shapes import Shape


class _Validity(Instrument):
    """A yes/no check after each pass that changed the model; blamed on the pass only if the model passed before."""

    failure = "fails"

    def __init__(self) -> None:
        self.ok_before = True

    def problem(self, model: onnx.ModelProto) -> str | None:
        """None when the model passes, else the one-line reason."""
        raise NotImplementedError

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        error = self.problem(model)
        self.ok_before = error is None
        figures[f"{self.name}_input"] = "ok" if error is None else error

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        if not result.changed:
            step.figures[self.name] = "unchanged"
            return
        error = self.problem(result.model)
        step.figures[self.name] = "ok" if error is None else error
        if error is None:
            self.ok_before = True
        elif self.ok_before:
            raise VerificationError(f"pass {p.name}: {self.failure} its output: {error}")


class CheckModel(_Validity):
    """The onnx checker after each pass."""

    name = "check"
    failure = "onnx checker rejects"

    def problem(self, model: onnx.ModelProto) -> str | None:
        try:
            if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
                onnx.checker.check_model(model)
            else:  # the checker needs a path above 2 GB
                import tempfile

                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "m.onnx")
                    onnx.save_model(model, path, save_as_external_data=True)
                    onnx.checker.check_model(path)
        except Exception as exc:
            return first_line(exc, 300)
        return None


class InferShapes(_Validity):
    """onnx shape inference (strict) after each pass; does not modify the model."""

    name = "shapes"
    failure = "shape inference fails on"

    def problem(self, model: onnx.ModelProto) -> str | None:
        if model.ByteSize() >= EXTERNAL_DATA_THRESHOLD:
            return None  # skipped: in-memory shape inference is limited to 2 GB
        try:
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        except Exception as exc:
            return first_line(exc, 300)
        return None


class NumericParity(Instrument):
    """Before-vs-after outputs on onnxruntime for every pass that changed the model.

    The reference outputs of the model before a pass are cached from the previous step,
    so each changed pass costs one session. Outputs that a pass newly exposes (truncate)
    are compared against the same tensors of the model before it.
    """

    name = "parity"

    def __init__(self, samples: int = 3, seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                 input_shapes: dict[str, Shape] | None = None, real_feeds: list[dict[str, np.ndarray]] | None = None):
        self.samples, self.seed, self.atol, self.rtol = samples, seed, atol, rtol
        self.input_shapes = input_shapes or {}
        self.real_feeds = real_feeds or []
        self._feeds: list[dict[str, np.ndarray]] = []
        self._prev_bytes: bytes | None = None
        self._prev_outputs: list[dict[str, np.ndarray]] = []
        self._orig_outputs: list[dict[str, np.ndarray]] = []
        self._orig_bytes: bytes | None = None

    # -- helpers
    def _make_feeds(self, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
        specs = model_inputs(model)
        shapes = resolve_shapes(specs, self.input_shapes)
        feeds = [random_feed(specs, shapes, self.seed + k) for k in range(self.samples)]
        for real in self.real_feeds:
            feeds.append({s.name: real[s.name] for s in specs if s.name in real})
        return feeds

    @staticmethod
    def _run(session: Session, feeds: list[dict[str, np.ndarray]], names: list[str] | None = None):
        return [session.run(f, names) for f in feeds]

    def _serialize(self, model: onnx.ModelProto) -> bytes | onnx.ModelProto:
        return model.SerializeToString() if model.ByteSize() < EXTERNAL_DATA_THRESHOLD else model

    def describe_feeds(self) -> dict[str, Any]:
        if not self._feeds:
            return {}
        return {
            "samples": len(self._feeds),
            "random": self.samples,
            "real": len(self.real_feeds),
            "seed": self.seed,
            "shapes": {k: list(v.shape) for k, v in self._feeds[0].items()},
            "atol": self.atol,
            "rtol": self.rtol,
        }

    # -- hooks
    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        self._feeds = self._make_feeds(model)
        data = self._serialize(model)
        try:
            session = Session(data)
            self._prev_outputs = self._run(session, self._feeds)
        except RuntimeError as exc:
            raise VerificationError(
                f"the input model does not run on onnxruntime: {exc} (use --no-verify to skip)") from None
        self._prev_bytes = data if isinstance(data, bytes) else None
        self._prev_model = None if isinstance(data, bytes) else data
        self._orig_outputs = self._prev_outputs
        self._orig_feeds = self._feeds
        figures["parity_inputs"] = self.describe_feeds()

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        if not result.changed:
            step.figures[self.name] = {"skipped": "model unchanged"}
            return
        new_data = self._serialize(result.model)
        new_specs = model_inputs(result.model)
        try:
            session = Session(new_data)
        except RuntimeError as exc:
            raise VerificationError(f"pass {p.name}: {exc}") from None

        feeds = self._feeds
        reference = self._prev_outputs
        prev_source = self._prev_bytes if self._prev_bytes is not None else self._prev_model
        note = ""
        if _feed_shapes(feeds) != _spec_view(new_specs, feeds):
            # the pass changed the inputs (fix_shapes): make new feeds, rerun the model before the pass on them
            feeds = self._make_feeds(result.model)
            try:
                reference = self._run(Session(prev_source), feeds)
            except RuntimeError:
                reference = None
                note = "inputs changed shape and the model before the pass does not accept the new ones"

        renamed = result.renamed_outputs
        wanted = {name: renamed.get(name, name) for name in session.output_names}  # new name -> name before
        if reference is not None:
            missing = [old for old in wanted.values() if old not in reference[0]]
            if missing:
                try:
                    extra = Session(prev_source, extra_outputs=missing)
                    more = self._run(extra, feeds, missing)
                    reference = [{**r, **m} for r, m in zip(reference, more, strict=True)]
                except RuntimeError as exc:
                    note = f"cannot read {', '.join(missing)} from the model before the pass: {exc}"
                    reference = None
        try:
            actual = self._run(session, feeds)
        except RuntimeError as exc:
            raise VerificationError(f"pass {p.name}: {exc}") from None

        figures: dict[str, Any] = {"outputs": {}, "atol": self.atol, "rtol": self.rtol, "samples": len(feeds)}
        failed: list[OutputDiff] = []
        if reference is None:
            figures["skipped"] = note
        else:
            for new, old in wanted.items():
                d = compare_arrays(new, [r[old] for r in reference], [a[new] for a in actual], self.atol, self.rtol)
                figures["outputs"][new] = d.to_dict()
                if not d.passed:
                    failed.append(d)
        figures["passed"] = not failed
        step.figures[self.name] = figures
        self._feeds = feeds
        self._prev_outputs = actual
        self._prev_bytes = new_data if isinstance(new_data, bytes) else None
        self._prev_model = None if isinstance(new_data, bytes) else new_data
        if failed and p.exact:
            worst = max(failed, key=lambda d: d.max_abs)
            detail = worst.note or (f"max abs error {worst.max_abs:.3g}, max rel {worst.max_rel:.3g}, "
                                    f"{worst.mismatches}/{worst.elements} elements beyond atol={self.atol:g} "
                                    f"rtol={self.rtol:g}")
            raise VerificationError(f"pass {p.name} is exact but changed output {worst.name!r}: {detail}")

    def after_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        """Whole-run deviation: the final model against the original, where inputs and outputs still match."""
        if _feed_shapes(self._feeds) != _feed_shapes(self._orig_feeds):
            figures["parity_total"] = {"skipped": "input shapes changed"}
            return
        total: dict[str, Any] = {}
        for name in self._prev_outputs[0] if self._prev_outputs else []:
            if name in self._orig_outputs[0]:
                d = compare_arrays(name, [o[name] for o in self._orig_outputs],
                                   [a[name] for a in self._prev_outputs], self.atol, self.rtol)
                total[name] = d.to_dict()
        figures["parity_total"] = total


def _feed_shapes(feeds: list[dict[str, np.ndarray]]) -> dict[str, tuple]:
    return {k: (v.shape, str(v.dtype)) for k, v in feeds[0].items()} if feeds else {}


def _spec_view(specs, feeds) -> dict[str, tuple]:
    """The current feed shapes if they still fit the specs, else something that never equals them."""
    if not feeds:
        return {}
    first = feeds[0]
    out = {}
    for s in specs:
        if s.name not in first:
            return {"<inputs changed>": ()}
        arr = first[s.name]
        fits = len(arr.shape) == len(s.shape) and all(
            not isinstance(d, int) or d <= 0 or d == n for d, n in zip(s.shape, arr.shape, strict=True))
        if not fits or str(arr.dtype) != str(s.dtype):
            return {"<inputs changed>": ()}
        out[s.name] = (arr.shape, str(arr.dtype))
    if set(out) != set(first):
        return {"<inputs changed>": ()}
    return out


class Snapshot(Instrument):
    """Save the model after each pass as ``NN_passname.onnx`` in a folder."""

    name = "snapshot"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        path = self.folder / f"{step.index + 1:02d}_{p.name}.onnx"
        save_model(result.model, path)
        step.figures[self.name] = str(path)
