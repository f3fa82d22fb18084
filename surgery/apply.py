"""``surgery.apply``: import once, run passes with verification, hand back the result.

The CLI's ``surgery apply`` is this function plus loading, saving, tables and a record.
What verification established is in ``ApplyResult.verification`` (a
:class:`~surgery.verification.RunVerification`) and in each step's ``verification``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from surgery.errors import UnknownNameError, UsageError, VerificationError
from surgery.graph import ModelSummary, load_model, summarize
from surgery.instruments import CheckModel, Contract, InferShapes, NumericParity, ParitySettings, Snapshot
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL, DISTRIBUTIONS, load_feeds
from surgery.pass_infra import Pass
from surgery.pipeline import Instrument, Pipeline, StepReport
from surgery.shapes import Shape, model_inputs
from surgery.verification import RunVerification

PassSpec = Pass | str | tuple[str, dict[str, Any]]
DEFAULT_VERIFY_BATCHES = (2, 3)


class NotVerifiedError(VerificationError):
    """``strict``: the run finished, but something was not verified (``verification`` says what)."""

    def __init__(self, verification: RunVerification, result: ApplyResult | None = None):
        super().__init__(f"{verification.describe()} (--strict)")
        self.verification = verification
        self.result = result


@dataclass
class ApplyResult:
    model: onnx.ModelProto
    steps: list[StepReport]
    before: ModelSummary
    after: ModelSummary
    figures: dict[str, Any] = field(default_factory=dict)
    verification: RunVerification = field(default_factory=lambda: RunVerification(enabled=False))

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)

    @property
    def verified(self) -> bool:
        """Every output compared after every pass on every sample, and the input was sound."""
        return self.verification.verified


def build_passes(specs: Sequence[PassSpec], registry: Mapping[str, type[Pass]] | None = None) -> list[Pass]:
    """Pass instances from instances, or names and (name, options) pairs looked up in ``registry``.

    Raises:
        UsageError: a name given with no registry to look it up in.
        UnknownNameError: a name the registry does not have (with a did-you-mean).
    """
    out: list[Pass] = []
    for spec in specs:
        if isinstance(spec, Pass):
            out.append(spec)
            continue
        name, options = (spec, {}) if isinstance(spec, str) else spec
        if registry is None:
            raise UsageError(f"pass {name!r} given by name but no pass registry was handed in: pass a Pass "
                             "instance, or call surgery.apply (which uses surgery.passes.PASSES)")
        if name not in registry:
            raise UnknownNameError("pass", name, registry)
        cls = registry[name]
        if all(isinstance(v, str) for v in options.values()):
            out.append(cls.from_strings(options))
        else:
            out.append(cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}))
    return out


def check_settings(*, samples: int = 3, seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                   input_shapes: dict[str, Shape] | None = None,
                   verify_batches: Sequence[int] = DEFAULT_VERIFY_BATCHES,
                   distributions: Sequence[str] = DISTRIBUTIONS) -> ParitySettings:
    """The verification settings, validated (what :func:`apply` does first; the CLI calls it before any export).

    Raises:
        UsageError: one line naming the bad setting (``--atol nan``, ``--samples 0``, ``--seed -1``, ...).
    """
    return ParitySettings(samples=samples, seed=seed, atol=atol, rtol=rtol, input_shapes=dict(input_shapes or {}),
                          verify_batches=tuple(verify_batches), distributions=tuple(distributions))


def verification_instruments(*, samples: int = 3, seed: int = 0, atol: float = DEFAULT_ATOL,
                             rtol: float = DEFAULT_RTOL, input_shapes: dict[str, Shape] | None = None,
                             real_feeds: list[dict[str, np.ndarray]] | None = None,
                             verify_batches: Sequence[int] = DEFAULT_VERIFY_BATCHES,
                             distributions: Sequence[str] = DISTRIBUTIONS) -> list[Instrument]:
    """Contract, checker, shape inference and parity, wired to share one serialisation per pass."""
    contract = Contract()
    return [contract, CheckModel(), InferShapes(),
            NumericParity(samples=samples, seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes,
                          real_feeds=real_feeds, verify_batches=verify_batches, distributions=distributions,
                          contract=contract)]


def apply(
    model: onnx.ModelProto | str | os.PathLike,
    passes: Sequence[PassSpec],
    *,
    registry: Mapping[str, type[Pass]] | None = None,
    verify: bool = True,
    samples: int = 3,
    seed: int = 0,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    input_shapes: dict[str, Shape] | None = None,
    inputs: str | os.PathLike | None = None,
    verify_batches: Sequence[int] = DEFAULT_VERIFY_BATCHES,
    distributions: Sequence[str] = DISTRIBUTIONS,
    strict: bool = False,
    snapshot: str | os.PathLike | None = None,
    dry_run: bool = False,
    copy: bool = True,
    on_step: Callable[[StepReport], None] | None = None,
    extra_instruments: Sequence[Instrument] = (),
) -> ApplyResult:
    """Run passes over a model, verifying after each.

    Args:
        model: a ModelProto or a path. A ModelProto is copied first unless ``copy=False``.
        passes: Pass instances, pass names, or (name, options) pairs, run in order.
        registry: name → pass class, for passes given by name (``surgery.passes.PASSES``).
        verify: the pass contract (digest, interface), the onnx checker, shape inference and
            onnxruntime parity after each pass.
        samples: seeded random samples for parity (plus any from ``inputs``), at least 1.
        seed: seed of the first random sample (sample k has seed ``seed + k``).
        atol: absolute tolerance (Polygraphy semantics: an element fails when both errors exceed).
        rtol: relative tolerance.
        input_shapes: sizes for dynamic input dimensions, e.g. ``{"x": (1, 3, 96, 96)}``.
        inputs: an .npz of real samples, one array per input name.
        verify_batches: batch sizes (besides 1) at which a pass that frees the batch is proven.
        distributions: the named distributions the seeded samples rotate through.
        strict: raise :class:`NotVerifiedError` when anything was not verified.
        snapshot: a folder to save the model after each pass.
        dry_run: report what each pass would match; the model is left as it was.
        copy: copy a given ModelProto before editing (the CLI passes False: it owns its copy).
            A dry run always works on a copy.
        on_step: called with each pass's report as soon as it is done.
        extra_instruments: run before verification, e.g. an accuracy budget (which may replace an
            inexact pass's output with a variant; the contract, checker and parity then verify that).

    Raises:
        UsageError: a bad setting (NaN or negative tolerance, samples < 1, negative seed, a zero
            or absurd dim, samples over the memory limit), checked before any pass runs.
        PassError: a pass failed (names it and the passes before it).
        VerificationError: an exact pass changed the outputs or its interface, lied about
            ``changed``, broke a freed batch, or produced an invalid model.
        NotVerifiedError: ``strict`` and some step (or the input model) was not verified.
    """
    settings = check_settings(samples=samples, seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes,
                              verify_batches=verify_batches, distributions=distributions)
    if strict and not verify:
        raise UsageError("--strict needs verification: drop --no-verify")
    if isinstance(model, onnx.ModelProto):
        if copy or dry_run:
            original = model
            model = onnx.ModelProto()
            model.CopyFrom(original)
    else:
        model = load_model(model)
    pass_list = build_passes(passes, registry)
    before = summarize(model)
    instruments: list[Instrument] = [] if dry_run else list(extra_instruments)
    verifying = verify and not dry_run
    if verifying:
        real = load_feeds(inputs, model_inputs(model)) if inputs else None
        instruments += verification_instruments(samples=settings.samples, seed=settings.seed, atol=settings.atol,
                                               rtol=settings.rtol, input_shapes=settings.input_shapes,
                                               real_feeds=real, verify_batches=settings.verify_batches,
                                               distributions=settings.distributions)
    if snapshot and not dry_run:
        instruments.append(Snapshot(snapshot))
    result = Pipeline(pass_list, instruments).run(model, on_step=on_step)
    input_problems = [f"the model given already fails the onnx checker's full check: {inst.input_problem}"
                      for inst in instruments if isinstance(inst, CheckModel) and inst.input_problem]
    if not verifying:
        off = "dry run" if dry_run else "--no-verify"
        for step in result.steps:
            step.verification.unverified(f"not verified ({off})")
        verification = RunVerification.from_steps(result.steps, enabled=False, off_reason=off)
    else:
        verification = RunVerification.from_steps(result.steps, input_problems=input_problems)
    out = ApplyResult(model=result.model, steps=result.steps, before=before, after=summarize(result.model),
                      figures=result.figures, verification=verification)
    if strict and not verification.verified:
        raise NotVerifiedError(verification, out)
    return out
