"""Instruments: verification, timing and snapshots around each pass.

- Contract: the model's digest before and after every pass, whatever the pass says about
  ``changed``; an exact pass keeps the graph's inputs and outputs (names, dtypes, ranks)
  unless its PassResult declares the change.
- CheckModel: the onnx checker (its full check on the model given).
- InferShapes: onnx shape inference in strict mode.
- NumericParity: onnxruntime, the model before vs after each pass on every output and
  every sample (seeded samples from named distributions plus any real ones), at the
  shapes the pass set; a freed batch is proven at more batch sizes. An exact pass that
  breaks parity fails the run; an inexact pass reports its deviation.
- Snapshot: save the model after each pass.

Each step's :class:`~surgery.verification.Verification` collects what was checked and
what could not be; its status is derived from those facts.

Checker and shape-inference failures are blamed on a pass only when the model passed
before it: a model that was already invalid does not fail every pass that follows (the
run names that pre-existing damage instead).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from surgery import validate
from surgery.batch_hazards import batch_hazards
from surgery.errors import UsageError, VerificationError, first_line
from surgery.graph import digest_bytes, dtype_name, is_large, model_digest, save_model, value_shape
from surgery.parity import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DISTRIBUTIONS,
    OutputDiff,
    Sample,
    Session,
    batch_axis,
    compare_arrays,
    fits,
    integer_ranges,
    join_rows,
    model_inputs,
    random_samples,
    with_input_shapes,
)
from surgery.pass_infra import Pass, PassResult
from surgery.pipeline import Instrument, StepReport
from surgery.shapes import InputSpec, Shape, format_shape, format_shapes, is_static, shapes_at
from surgery.verification import Verification

REAL_HINT = "give real samples with --inputs FILE.npz"


# ---------------------------------------------------------------------------
# the model as bytes, once per pass


@dataclass
class Captured:
    """A model frozen at one point of the run: its bytes (or a copy above 2 GB) and its digest."""

    data: bytes | None
    proto: onnx.ModelProto | None
    digest: str

    @property
    def source(self) -> bytes | onnx.ModelProto:
        return self.data if self.data is not None else self.proto  # type: ignore[return-value]


def capture(model: onnx.ModelProto) -> Captured:
    """Serialise once (the digest hashes those bytes); above 2 GB keep a copy and hash tensor by tensor."""
    if not is_large(model):
        data = model.SerializeToString()
        return Captured(data, None, digest_bytes(data))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # passes edit in place: the model before the pass must not change under us
    return Captured(None, copy, model_digest(model))


# ---------------------------------------------------------------------------
# the pass contract


@dataclass(frozen=True)
class Port:
    """A graph input or output as the interface sees it: name, element type, rank (None when unknown)."""

    name: str
    dtype: int
    rank: int | None


def interface(model: onnx.ModelProto) -> tuple[list[Port], list[Port]]:
    """The graph's real inputs (initializers excluded) and outputs."""
    inits = {t.name for t in model.graph.initializer}

    def port(vi: onnx.ValueInfoProto) -> Port:
        t = vi.type.tensor_type
        has = vi.type.HasField("tensor_type")
        return Port(vi.name, t.elem_type if has else 0, len(t.shape.dim) if has and t.HasField("shape") else None)

    return ([port(v) for v in model.graph.input if v.name not in inits], [port(v) for v in model.graph.output])


@dataclass(frozen=True)
class InterfaceChange:
    """One undeclared change of the graph's interface: ``kind`` is name, order, dtype or rank."""

    kind: str
    text: str


def interface_changes(before: tuple[list[Port], list[Port]], after: tuple[list[Port], list[Port]],
                      result: PassResult) -> list[InterfaceChange]:
    """Changes of the graph's interface that ``result`` did not declare."""
    problems: list[InterfaceChange] = []
    ins_before = {p.name: p for p in before[0]}
    renamed_in = result.renamed_inputs
    kept_in = {renamed_in.get(q.name, q.name) for q in after[0]}
    for p in after[0]:
        old = renamed_in.get(p.name, p.name)
        if old in ins_before:
            problems.extend(_port_change("input", ins_before[old], p))
            continue
        gone = [n for n in ins_before if n not in kept_in]
        problems.append(InterfaceChange("name", f"renamed graph input {gone[0]!r} to {p.name!r} without declaring it"
                                        if gone else f"added graph input {p.name!r}"))
    renamed_away = any(c.text.startswith("renamed graph input") for c in problems)
    if not renamed_away:
        problems.extend(InterfaceChange("name", f"removed graph input {n!r}") for n in ins_before if n not in kept_in)

    outs_before = {p.name: p for p in before[1]}
    renamed, dropped, added = result.renamed_outputs, set(result.dropped_outputs), set(result.added_outputs)
    mapped_after = {renamed.get(q.name, q.name) for q in after[1]}
    vanished = [n for n in outs_before if n not in dropped and n not in mapped_after]
    seen: list[str] = []
    for p in after[1]:
        old = renamed.get(p.name, p.name)
        if old in outs_before and old not in dropped:
            seen.append(old)
            problems.extend(_port_change("output", outs_before[old], p))
        elif p.name not in added and old not in added:
            if vanished:
                problems.append(InterfaceChange("name", f"renamed graph output {vanished.pop(0)!r} to {p.name!r} "
                                                "without declaring it"))
            else:
                problems.append(InterfaceChange("name", f"added graph output {p.name!r} without declaring it"))
    problems.extend(InterfaceChange("name", f"dropped graph output {n!r} without declaring it") for n in vanished)
    order_before = [n for n in outs_before if n in seen]
    if not result.reordered_outputs and seen != order_before:
        problems.append(InterfaceChange("order", f"reordered the graph outputs ({', '.join(order_before)} → "
                                                 f"{', '.join(seen)}) without declaring it"))
    return problems


def _port_change(kind: str, old: Port, new: Port) -> list[InterfaceChange]:
    out = []
    if old.dtype and new.dtype and old.dtype != new.dtype:
        out.append(InterfaceChange("dtype", f"changed the dtype of graph {kind} {new.name!r} from "
                                            f"{dtype_name(old.dtype)} to {dtype_name(new.dtype)}"))
    if old.rank is not None and new.rank is not None and old.rank != new.rank:
        out.append(InterfaceChange("rank", f"changed the rank of graph {kind} {new.name!r} from {old.rank} to "
                                           f"{new.rank}"))
    return out


class Contract(Instrument):
    """The digest before and after every pass, and the interface an exact pass promises to keep.

    A pass that edited the model and reported ``changed=False`` fails, naming it; so does an
    exact pass that drops, renames, adds or reorders graph outputs (or inputs), or changes
    their dtype or rank, without declaring it in its PassResult. The serialised model is kept
    for the instruments that follow (``current``), so each pass is serialised once.
    """

    name = "contract"

    def __init__(self) -> None:
        self.current: Captured | None = None
        self.current_step: int | None = None  # the step ``current`` was captured after (None: the input)
        self._before: Captured | None = None
        self._interface: tuple[list[Port], list[Port]] | None = None

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        self.current, self.current_step = capture(model), None

    def before_pass(self, p: Pass, model: onnx.ModelProto, step: StepReport) -> None:
        if self.current is None:
            self.current = capture(model)
        self._before = self.current
        self._interface = interface(model)

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        v = step.verification
        before = self._before
        after = capture(result.model)
        self.current, self.current_step = after, step.index
        v.digest_before, v.digest_after = (before.digest if before else None), after.digest
        if before is not None and before.digest == after.digest:
            v.unchanged = True
            return
        if not result.changed:
            message = (f"pass {p.name} reported no change but edited the model "
                       f"(digest {v.digest_before[:12] if v.digest_before else '?'} → {after.digest[:12]})")
            v.fail(message)
            raise VerificationError(message)
        problems = interface_changes(self._interface or ([], []), interface(result.model), result)
        if problems and p.exact:
            message = f"pass {p.name} is exact but {problems[0].text}"
            v.fail(message)
            raise VerificationError(message)
        # an inexact pass may change an output's dtype on purpose (parity reports the deviation); an output
        # dropped or renamed without saying so has no counterpart to be compared with
        for problem in problems:
            if problem.kind in ("dtype", "rank"):
                step.figures.setdefault(self.name, []).append(problem.text)
            else:
                v.unverified(problem.text)


def _unchanged(result: PassResult, step: StepReport) -> bool:
    """Unchanged by digest when the Contract ran, else by the pass's own word."""
    v = step.verification
    if v.digest_after is not None:
        return v.unchanged
    return not result.changed


# ---------------------------------------------------------------------------
# validity: checker and shape inference


class _Validity(Instrument):
    """A yes/no check after each pass that changed the model; blamed on the pass only if the model passed before."""

    failure = "fails"

    def __init__(self) -> None:
        self.ok_before = True
        self.input_problem: str | None = None  # what was wrong with the model given, before any pass
        self._last_error: str | None = None

    def problem(self, model: onnx.ModelProto, *, first: bool = False) -> str | None:
        """None when the model passes, else the one-line reason (``first``: the model given)."""
        raise NotImplementedError

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        error = self.problem(model, first=True)
        self.ok_before = error is None
        self.input_problem = self._last_error = error
        figures[f"{self.name}_input"] = "ok" if error is None else error

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        if _unchanged(result, step):
            step.figures[self.name] = "unchanged"
            return
        error = self.problem(result.model)
        reason = p.nonstandard() if error is not None else None
        if reason is not None:  # refused on purpose: not the pass's fault, and not checked either
            step.figures[self.name] = f"not checked: non-standard ONNX by design ({error})"
            step.verification.unverified(f"non-standard ONNX by design: {reason}")
            self.ok_before, self._last_error = False, error
            return
        if error is None:
            step.figures[self.name] = "ok"
            self.ok_before, self._last_error = True, None
            return
        if self.ok_before:
            message = f"pass {p.name}: {self.failure} its output: {error}"
            step.verification.fail(message)
            raise VerificationError(message)
        if error == self._last_error:
            step.figures[self.name] = f"still fails as before the pass: {error}"
        else:  # a different error: maybe the pass's, maybe the old damage seen from elsewhere; say so, blame no one
            step.figures[self.name] = error
            step.verification.unverified(f"{self.failure} the model after it ({error}); the model before already "
                                         f"failed ({self._last_error})")
        self._last_error = error


def _shapeless_outputs(model: onnx.ModelProto) -> list[str]:
    return [o.name for o in model.graph.output
            if o.type.HasField("tensor_type") and not o.type.tensor_type.HasField("shape")]


class CheckModel(_Validity):
    """The onnx checker after each pass; its full check (strict shape inference too) on the model given.

    Graph outputs of unknown rank (a ``truncate`` at a Loop output whose rank neither the graph
    nor a run could tell) are legal for onnxruntime; the checker demands a shape for them, so
    they are checked as if absent rather than refused by our own check.
    """

    name = "check"
    failure = "onnx checker rejects"

    def problem(self, model: onnx.ModelProto, *, first: bool = False) -> str | None:
        shapeless = _shapeless_outputs(model)
        if shapeless:
            view = onnx.ModelProto()
            view.CopyFrom(model)
            keep = [o for o in view.graph.output if o.name not in set(shapeless)]
            del view.graph.output[:]
            view.graph.output.extend(keep)
            model = view
        try:
            if not is_large(model):
                onnx.checker.check_model(model, full_check=first)
            else:  # the checker needs a path above 2 GB
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "m.onnx")
                    save_model(model, path, external_data=True)  # onnx.save_model would strip the model's weights
                    onnx.checker.check_model(path, full_check=first)
        except Exception as exc:
            return first_line(exc, 300)
        return None


class InferShapes(_Validity):
    """onnx shape inference (strict) after each pass; does not modify the model."""

    name = "shapes"
    failure = "shape inference fails on"

    def problem(self, model: onnx.ModelProto, *, first: bool = False) -> str | None:
        if is_large(model):
            return None  # skipped: in-memory shape inference is limited to 2 GB
        try:
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        except Exception as exc:
            return first_line(exc, 300)
        return None


# ---------------------------------------------------------------------------
# numeric parity


@dataclass
class _Reference:
    """The model before the next pass, the samples it was run on, and its outputs on them.

    ``outputs`` is None when the model could not be run on them; ``problem`` then says why
    (and the next pass is unverified for it unless its own shapes make a comparison possible).
    """

    captured: Captured
    specs: list[InputSpec] | None
    shapes: dict[str, tuple[int, ...]] | None = None
    samples: list[Sample] = field(default_factory=list)
    outputs: list[dict[str, Any]] | None = None
    problem: str | None = None
    declared: dict[str, list[int | str] | None] = field(default_factory=dict)  # the graph's output dims


@dataclass(frozen=True)
class ParitySettings:
    """Verification settings, each checked by :mod:`surgery.validate` (the CLI's flags name them).

    Raises:
        UsageError: a NaN, negative or infinite tolerance, fewer than one sample, a negative seed,
            an unknown distribution, a bad batch size, or a dimension that is zero or absurd.
    """

    samples: int = 3
    seed: int = 0
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    input_shapes: dict[str, Shape] = field(default_factory=dict)
    distributions: tuple[str, ...] = DISTRIBUTIONS
    verify_batches: tuple[int, ...] = (2, 3)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "samples", validate.count(self.samples, "--samples"))
        put(self, "seed", validate.seed(self.seed))
        put(self, "atol", validate.tolerance(self.atol, "--atol"))
        put(self, "rtol", validate.tolerance(self.rtol, "--rtol"))
        put(self, "input_shapes", check_shapes(self.input_shapes))
        dists = tuple(validate.one_of(d, "sample distribution", DISTRIBUTIONS) for d in self.distributions)
        if not dists:
            raise UsageError(f"give at least one sample distribution ({', '.join(DISTRIBUTIONS)})")
        put(self, "distributions", dists)
        batches = tuple(validate.count(b, "--verify-batches") for b in self.verify_batches)
        if len(set(batches)) != len(batches):
            raise UsageError(f"--verify-batches names a batch size twice: {','.join(map(str, batches))}")
        put(self, "verify_batches", batches)


class NumericParity(Instrument):
    """Before-vs-after outputs on onnxruntime for every pass that changed the model.

    The outputs of the model before a pass are kept from the previous step, so a pass that
    keeps the input shapes costs one session. A pass that changes them (``fix_shapes``) is
    compared at the new shapes: the model before it is run on the same rows one batch at a
    time when only the batch changed, else with its input dims replaced; only when
    onnxruntime refuses that is the step unverified. Outputs that a pass newly exposes
    (truncate) are read from the same tensors of the model before it. A pass that frees the
    batch is proven at ``verify_batches``: the model runs, each output's batch follows the
    input's, and each row equals that sample run alone.
    """

    name = "parity"

    def __init__(self, samples: int = 3, seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                 input_shapes: dict[str, Shape] | None = None, real_feeds: list[dict[str, np.ndarray]] | None = None,
                 *, distributions: Sequence[str] = DISTRIBUTIONS, verify_batches: Sequence[int] = (2, 3),
                 contract: Contract | None = None, real_label: str = "--inputs"):
        settings = ParitySettings(samples=samples, seed=seed, atol=atol, rtol=rtol, input_shapes=input_shapes or {},
                                  distributions=tuple(distributions), verify_batches=tuple(verify_batches))
        self.settings = settings
        self.samples, self.seed, self.atol, self.rtol = settings.samples, settings.seed, settings.atol, settings.rtol
        self.distributions, self.verify_batches = settings.distributions, settings.verify_batches
        self.input_shapes = settings.input_shapes
        self.real_feeds = list(real_feeds or [])
        self.real_label = real_label
        self.contract = contract
        self._ref: _Reference | None = None
        self._orig: _Reference | None = None
        self._int_ranges: dict[str, tuple[int, int]] = {}

    # -- samples ------------------------------------------------------------------------------------
    def _samples(self, specs: list[InputSpec], shapes: dict[str, tuple[int, ...]],
                 *, first: bool) -> tuple[list[Sample], str | None]:
        """Seeded samples at ``shapes`` plus the real ones that fit ``specs``; and why real ones were left out."""
        itemsizes = {s.name: max(1, s.dtype.itemsize) for s in specs}
        validate.input_bytes(shapes, itemsizes, copies=self.samples + len(self.real_feeds)
                             + max(self.verify_batches, default=0), what="the verification samples")
        out = random_samples(specs, shapes, count=self.samples, seed=self.seed, distributions=self.distributions,
                             int_ranges=self._int_ranges)
        left_out = []
        for k, real in enumerate(self.real_feeds):
            feed = {s.name: real[s.name] for s in specs if s.name in real}
            bad = [s for s in specs if s.name not in feed or not fits(s, feed[s.name].shape)]
            if bad:
                s = bad[0]
                got = format_shape(feed[s.name].shape) if s.name in feed else "nothing"
                if first:
                    raise UsageError(f"{self.real_label} sample {k}: input {s.name!r} takes "
                                     f"{format_shape(s.shape)}, got {got}")
                left_out.append(f"{self.real_label} sample {k} ({s.name}:{got})")
                continue
            out.append(Sample(feed, {"source": self.real_label, "index": k}))
        why = (f"real samples that do not fit the new input shapes {format_shapes(shapes)} were left out: "
               f"{', '.join(left_out)}") if left_out else None
        return out, why

    def describe_feeds(self) -> dict[str, Any]:
        ref = self._ref
        if ref is None:
            return {}
        return {
            "samples": len(ref.samples),
            "random": self.samples,
            "real": len(self.real_feeds),
            "seed": self.seed,
            "distributions": list(self.distributions),
            "verify_batches": list(self.verify_batches),
            "per_sample": [dict(s.info) for s in ref.samples],
            "shapes": {k: list(v) for k, v in (ref.shapes or {}).items()},
            "atol": self.atol,
            "rtol": self.rtol,
            **({"problem": ref.problem} if ref.problem else {}),
        }

    # -- hooks --------------------------------------------------------------------------------------
    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        captured = self.contract.current if self.contract is not None and self.contract.current else capture(model)
        self._int_ranges = integer_ranges(model)
        try:
            specs = model_inputs(model)
        except UsageError as exc:  # a sequence or map input: nothing can be generated for it
            self._ref = _Reference(captured, None, problem=f"{exc}")
            figures["parity_inputs"] = self.describe_feeds()
            return
        self._ref = ref = _Reference(captured, specs, declared=_declared(model))
        unknown = sorted(set(self.input_shapes) - {s.name for s in specs})
        if unknown:
            raise UsageError(f"--input-shapes names {', '.join(unknown)}, not an input of the model "
                             f"(inputs: {', '.join(s.name for s in specs)})")
        for s in specs:
            given = self.input_shapes.get(s.name)
            if given is not None and s.shape and len(given) != len(s.shape):
                raise UsageError(f"input {s.name!r} has rank {len(s.shape)}, --input-shapes gives "
                                 f"{format_shape(given)}")
            if given is not None and any(is_static(d) and d != g for d, g in zip(s.shape, given, strict=False)):
                raise UsageError(f"input {s.name!r} is {format_shape(s.shape)}; --input-shapes gives "
                                 f"{format_shape(given)} (it sizes dynamic dims; fix_shapes sets static ones)")
        try:
            ref.shapes = shapes_at(specs, None, _merge_static(specs, self.input_shapes))
        except UsageError as exc:  # a dynamic axis with no size: a pass may still set it (fix_shapes)
            ref.problem = str(exc)
        if ref.shapes is not None:
            ref.samples, _ = self._samples(specs, ref.shapes, first=True)
            ref.outputs, ref.samples, ref.problem = self._run_input(captured, ref.samples)
        self._orig = ref
        figures["parity_inputs"] = self.describe_feeds()

    def _run_input(self, captured: Captured, samples: list[Sample]) -> tuple[list | None, list[Sample], str | None]:
        """The model given, run on the samples; samples it cannot run are left out (all of them: a problem)."""
        try:
            session = Session(captured.source)
        except RuntimeError as exc:
            return None, samples, f"{exc}"
        outputs, kept, errors = [], [], []
        for s in samples:
            try:
                outputs.append(session.run(s.feed))
                kept.append(s)
            except RuntimeError as exc:
                errors.append((s, exc))
        if not kept:
            s, exc = errors[0]
            hint = f"; {REAL_HINT}" if all(x.info.get("source") == "random" for x, _ in errors) else ""
            return None, samples, f"the model given does not run on the generated samples ({exc}){hint}"
        for s, exc in errors:
            s.info["left_out"] = first_line(exc, 200)
        return outputs, kept, None

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        v = step.verification
        if _unchanged(result, step):
            step.figures[self.name] = {"skipped": "model unchanged"}
            return
        ref = self._ref
        assert ref is not None, "before_pipeline was not called"
        reason = p.nonstandard()
        if reason is not None:  # onnxruntime cannot run it: compared nowhere, and said so
            figures = step.figures[self.name] = {}
            self._unverifiable(v, figures, capture(result.model), None, f"non-standard ONNX by design: {reason}")
            return
        if self.contract is not None and self.contract.current_step == step.index and self.contract.current:
            after = self.contract.current
        else:
            after = capture(result.model)
            v.digest_before, v.digest_after = ref.captured.digest, after.digest
            if after.digest == ref.captured.digest:
                v.unchanged = True
                step.figures[self.name] = {"skipped": "model unchanged"}
                return
        figures: dict[str, Any] = {"outputs": {}, "atol": self.atol, "rtol": self.rtol}
        step.figures[self.name] = figures
        try:
            new_specs = model_inputs(result.model)
        except UsageError as exc:
            self._unverifiable(v, figures, after, None, f"{exc}")
            return
        renamed_in = result.renamed_inputs
        try:
            shapes = self._next_shapes(ref, new_specs, renamed_in)
        except UsageError as exc:
            self._unverifiable(v, figures, after, new_specs, ref.problem or str(exc))
            return
        # the samples: the same ones when the shapes stayed, else the same seeds at the new shapes
        if ref.outputs is not None and ref.shapes is not None and shapes == _renamed(ref.shapes, renamed_in):
            samples, reference, why = ref.samples, ref.outputs, None
            samples = [Sample(_renamed(s.feed, renamed_in), s.info) for s in samples] if renamed_in else samples
        else:
            samples, left_out = self._samples(new_specs, shapes, first=False)
            if left_out:
                v.unverified(left_out)
            reference, why = None, None
        v.samples = [dict(s.info) for s in samples]
        figures["samples"] = len(samples)
        old_names = {new: renamed_in.get(new, new) for new in shapes}
        before_feeds = [{old_names[n]: a for n, a in s.feed.items()} for s in samples]
        if reference is None:
            reference, why = self._reference(ref, before_feeds)
            if reference is None and ref.problem and shapes == _renamed(ref.shapes or {}, renamed_in):
                why = ref.problem  # the same failure as on the model given, with its hint
        self._check_dims(ref, new_specs, renamed_in, shapes, result.model, v)  # hazards first: failures cite them
        try:
            session = Session(after.source)
            actual = [session.run(s.feed) for s in samples]
        except RuntimeError as exc:
            if reference is None:  # the model before could not run these either: nothing to blame the pass for
                self._unverifiable(v, figures, after, new_specs, why or f"{exc}")
                return
            raise self._batch_failure(p, v, f"the model after it {_lower(str(exc))}") from None
        wanted = {name: result.renamed_outputs.get(name, name) for name in session.output_names}
        declared = _declared(result.model)
        symbols = {str(s.shape[0]) for s in new_specs if s.shape and not is_static(s.shape[0])}
        failed: list[OutputDiff] = []
        if reference is not None:
            reference, why = self._with_outputs(ref, before_feeds, reference, list(wanted.values()))
        if reference is None:
            v.unverified(why or "the model before the pass could not be run")
        else:
            for new, old in wanted.items():
                sizes = reference[0].sizes if isinstance(reference[0], _Rows) else None
                axis = batch_axis(declared.get(new), symbols, before=ref.declared.get(old), sizes=sizes)
                expected = [_joined(r[old], a[new], axis) for r, a in zip(reference, actual, strict=True)]
                if any(e is None for e in expected):
                    d = OutputDiff(name=new, passed=False, note=_not_following(reference[0][old], actual[0][new]))
                    d.shape = list(np.shape(actual[0][new]))
                else:
                    d = compare_arrays(new, expected, [a[new] for a in actual], self.atol, self.rtol)
                figures["outputs"][new] = d.to_dict()
                if not d.passed:
                    failed.append(d)
            v.compared = True
        figures["passed"] = not failed
        self._ref = _Reference(after, new_specs, shapes, samples, actual, declared=declared)
        if failed and p.exact:
            worst = max(failed, key=lambda d: (bool(d.note), d.max_abs))  # a shape or non-finite note says most
            detail = worst.note or (f"max abs error {worst.max_abs:.3g}, max rel {worst.max_rel:.3g}, "
                                    f"{worst.mismatches}/{worst.elements} elements beyond atol={self.atol:g} "
                                    f"rtol={self.rtol:g}")
            if reference is not None and isinstance(reference[0], _Rows):
                b0, size = reference[0].sizes
                detail += f" (against the model before, run {size // b0} times on {b0} row{'s' * (b0 > 1)} each)"
            raise self._batch_failure(p, v, f"is exact but changed output {worst.name!r}: {detail}", sep=" ")
        self._prove_batches(p, ref, new_specs, renamed_in, session, samples, actual, step, declared)

    def _unverifiable(self, v: Verification, figures: dict[str, Any], after: Captured,
                      specs: list[InputSpec] | None, why: str) -> None:
        v.unverified(why)
        figures["skipped"] = why
        self._ref = _Reference(after, specs, problem=why)

    # -- shapes and references ----------------------------------------------------------------------
    def _next_shapes(self, ref: _Reference, specs: list[InputSpec],
                     renamed_in: dict[str, str]) -> dict[str, tuple[int, ...]]:
        """The shapes of the samples for the model after a pass: the previous ones, with the dims it set.

        Raises:
            UsageError: a dynamic axis no pass and no ``--input-shapes`` gives a size for.
        """
        previous = ref.shapes
        if previous is not None:
            out: dict[str, tuple[int, ...]] = {}
            for s in specs:
                old = previous.get(renamed_in.get(s.name, s.name))
                if old is None or len(old) != len(s.shape):
                    break
                out[s.name] = tuple(int(d) if is_static(d) else o for d, o in zip(s.shape, old, strict=True))
            else:
                return out
        given = {new: self.input_shapes[old] for new, old in ((s.name, renamed_in.get(s.name, s.name))
                                                              for s in specs) if old in self.input_shapes}
        return shapes_at(specs, None, _merge_static(specs, given))

    def _run(self, source: bytes | onnx.ModelProto, feeds: list[dict[str, np.ndarray]],
             extra: list[str] | None = None) -> list[dict[str, Any]]:
        session = Session(source, extra_outputs=extra)
        return [session.run(f, extra) for f in feeds]

    def _reference(self, ref: _Reference, feeds: list[dict[str, np.ndarray]],
                   extra: list[str] | None = None) -> tuple[list | None, str | None]:
        """Outputs of the model before the pass on ``feeds`` (named as it names its inputs), or why not.

        Feeds it accepts run as they are; feeds that differ only in the batch run one batch of
        its own size at a time (the rows joined later, along each output's batch axis); others
        run on a copy whose input dims are replaced.
        """
        specs = ref.specs
        source = ref.captured.source
        if specs is None:
            return None, ref.problem or "the inputs of the model before the pass cannot be generated"
        by_name = {s.name: s for s in specs}
        if all(n in by_name and fits(by_name[n], a.shape) for f in feeds for n, a in f.items()):
            try:
                return self._run(source, feeds, extra), None
            except RuntimeError as exc:
                return None, f"the model before the pass {_lower(str(exc))}"
        chunks = _batch_chunks(by_name, feeds)
        if chunks is not None:
            try:
                session = Session(source, extra_outputs=extra)
                return [_Rows([session.run(c, extra) for c in rows], sizes) for rows, sizes in chunks], None
            except RuntimeError:
                pass  # try with its input dims replaced
        shapes = {n: tuple(a.shape) for n, a in feeds[0].items()}
        try:
            return self._run(with_input_shapes(source, shapes), feeds, extra), None
        except RuntimeError as exc:
            return None, (f"the model before the pass cannot take {format_shapes(shapes)} "
                          f"({_lower(first_line(exc, 200))})")

    def _with_outputs(self, ref: _Reference, feeds: list[dict[str, np.ndarray]], reference: list,
                      names: list[str]) -> tuple[list | None, str | None]:
        """The reference with the tensors a pass made outputs (truncate) read from the model before it."""
        first = reference[0].parts[0] if isinstance(reference[0], _Rows) else reference[0]
        missing = [n for n in dict.fromkeys(names) if n not in first]
        if not missing:
            return reference, None
        more, why = self._reference(ref, feeds, missing)
        if more is None or isinstance(more[0], _Rows) != isinstance(reference[0], _Rows):
            return None, f"cannot read {', '.join(missing)} from the model before the pass: {why or 'no run fits'}"
        return [_merge(r, m) for r, m in zip(reference, more, strict=True)], None

    # -- dims a pass freed, and the batch proof ---------------------------------------------------------
    def _check_dims(self, ref: _Reference, specs: list[InputSpec], renamed_in: dict[str, str],
                    shapes: dict[str, tuple[int, ...]], model: onnx.ModelProto, v: Verification) -> None:
        """Name the hazards when the batch was freed or changed; a freed dim other than the batch: seen at one size."""
        if ref.specs is None:
            return
        before = {s.name: s for s in ref.specs}
        batch_touched = False
        for s in specs:
            old = before.get(renamed_in.get(s.name, s.name))
            if old is None or len(old.shape) != len(s.shape):
                continue
            for axis, (d_old, d_new) in enumerate(zip(old.shape, s.shape, strict=True)):
                freed = is_static(d_old) and not is_static(d_new)
                if axis == 0 and (freed or (is_static(d_old) and is_static(d_new) and d_old != d_new)):
                    batch_touched = True
                elif freed:
                    v.unverified(f"dim {axis} of {s.name!r} is now dynamic ({d_new}); it was compared at size "
                                 f"{shapes[s.name][axis]} only")
        if batch_touched:
            for hazard in batch_hazards(model):
                v.hazard(hazard)

    def _prove_batches(self, p: Pass, ref: _Reference, specs: list[InputSpec], renamed_in: dict[str, str],
                       session: Session, samples: list[Sample], actual: list[dict[str, Any]],
                       step: StepReport, declared: dict[str, list[int | str] | None]) -> None:
        """A freed batch: run at each of ``verify_batches``; outputs follow the batch; rows equal samples run alone."""
        v = step.verification
        if ref.specs is None:
            return
        before = {s.name: s for s in ref.specs}
        batched = [s.name for s in specs if s.shape and not is_static(s.shape[0]) and
                   (old := before.get(renamed_in.get(s.name, s.name))) is not None and old.shape and
                   is_static(old.shape[0])]
        if not batched:
            return
        if not self.verify_batches:
            v.unverified("the batch is now dynamic but no --verify-batches were given to prove it")
            return
        rows, alone = self._rows(session, specs, batched, samples, actual)
        symbols = {str(s.shape[0]) for s in specs if s.name in batched}
        proven = [1]
        for b in self.verify_batches:
            if b == 1:
                continue
            feed = {n: (np.concatenate([rows[r][n] for r in range(b)]) if n in batched else rows[0][n])
                    for n in rows[0]}
            try:
                out = session.run(feed)
            except RuntimeError as exc:
                raise self._batch_failure(p, v, f"the model after it does not run at batch {b}: "
                                                f"{_lower(str(exc))}") from None
            for name, value in out.items():
                axis = batch_axis(declared.get(name), symbols)
                joined = join_rows([alone[r][name] for r in range(b)], np.shape(value), axis)
                if joined is None:
                    raise self._batch_failure(p, v, f"at batch {b}, output {name!r} "
                                                    f"{_not_following(alone[0][name], value)}")
                d = compare_arrays(name, [joined], [value], self.atol, self.rtol)
                if not d.passed:
                    raise self._batch_failure(p, v, f"at batch {b}, output {name!r} differs from its samples run one "
                                                    f"at a time: {d.note or f'max abs error {d.max_abs:.3g}'}")
            proven.append(b)
        v.batches = proven
        step.figures[self.name]["batches"] = proven

    def _rows(self, session: Session, specs: list[InputSpec], batched: list[str], samples: list[Sample],
              actual: list[dict[str, Any]]) -> tuple[list[dict[str, np.ndarray]], list[dict[str, Any]]]:
        """Batch-1 rows for the proof (the samples' rows, then more seeded ones), with their outputs run alone."""
        need = max(self.verify_batches)
        rows: list[dict[str, np.ndarray]] = []
        alone: list[dict[str, Any]] = []
        for s, out in zip(samples, actual, strict=True):
            size = s.feed[batched[0]].shape[0]
            for r in range(size):
                rows.append({n: (a[r:r + 1] if n in batched else a) for n, a in s.feed.items()})
                alone.append(out if size == 1 else {})
        shapes = {s.name: (1, *tuple(rows[0][s.name].shape[1:])) if s.name in batched else rows[0][s.name].shape
                  for s in specs} if rows else {}
        extra_seed = self.seed + self.samples
        while len(rows) < need:
            dist = self.distributions[len(rows) % len(self.distributions)]
            more = random_samples(specs, shapes, count=1, seed=extra_seed, int_ranges=self._int_ranges,
                                  distributions=(dist,))
            extra_seed += 1
            rows.append(more[0].feed)
            alone.append({})
        fixed = {n: a for n, a in rows[0].items() if n not in batched}  # inputs without a batch are shared by all rows
        for r in range(need):
            if any(not np.array_equal(rows[r][n], a) for n, a in fixed.items()):
                rows[r] = {**rows[r], **fixed}
                alone[r] = {}
            if not alone[r]:
                alone[r] = session.run(rows[r])
        return rows[:need], alone[:need]

    @staticmethod
    def _batch_failure(p: Pass, v: Verification, what: str, sep: str = ": ") -> VerificationError:
        """A failure, recorded on the step, with the first batch hazard as the likely why."""
        hint = f" (hazard: {v.hazards[0]})" if v.hazards else ""
        message = f"pass {p.name}{sep}{what}{hint}"
        v.fail(message)
        return VerificationError(message)

    def after_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        """Whole-run deviation: the final model against the original, where shapes and outputs still match."""
        orig, last = self._orig, self._ref
        if orig is None or last is None or orig.outputs is None or last.outputs is None:
            figures["parity_total"] = {"skipped": "no comparison possible"}
            return
        if orig.shapes != last.shapes or len(orig.samples) != len(last.samples):
            figures["parity_total"] = {"skipped": "input shapes changed"}
            return
        total: dict[str, Any] = {}
        for name in last.outputs[0] if last.outputs else []:
            if name in orig.outputs[0]:
                d = compare_arrays(name, [o[name] for o in orig.outputs], [a[name] for a in last.outputs],
                                   self.atol, self.rtol)
                total[name] = d.to_dict()
        figures["parity_total"] = total


@dataclass
class _Rows:
    """Outputs of the model before a pass run one batch of its own size at a time, to be joined.

    ``sizes``: (the batch the model before takes, the batch of the feed they stand for).
    """

    parts: list[dict[str, Any]]
    sizes: tuple[int, int]

    def __getitem__(self, name: str) -> list[Any]:
        return [part[name] for part in self.parts]


def _merge(reference: Any, more: Any) -> Any:
    if isinstance(reference, _Rows):
        return _Rows([{**a, **b} for a, b in zip(reference.parts, more.parts, strict=True)], reference.sizes)
    return {**reference, **more}


def _joined(expected: Any, actual: Any, axis: int) -> Any:
    """The reference for one output of one sample: as is, or its rows joined along the batch axis."""
    if isinstance(expected, list) and expected and not isinstance(actual, list):
        return join_rows(expected, np.shape(actual), axis)
    return expected


def _declared(model: onnx.ModelProto) -> dict[str, list[int | str] | None]:
    """Each graph output's dims as the graph declares them (None where it declares no shape)."""
    return {o.name: value_shape(o) for o in model.graph.output}


def _not_following(rows: Any, value: Any) -> str:
    """Why rows run alone cannot be joined into ``value`` (``rows``: one array, or the parts of a _Rows output)."""
    row = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], np.ndarray) else rows
    return (f"has shape {list(np.shape(value))} where each sample run alone gives {list(np.shape(row))}: "
            "its batch does not follow the input's")


def _batch_chunks(by_name: dict[str, InputSpec], feeds: list[dict[str, np.ndarray]]
                  ) -> list[tuple[list[dict[str, np.ndarray]], tuple[int, int]]] | None:
    """Each feed cut along axis 0 into batches the model before takes, when only the batch differs; else None.

    Returns, per feed, the pieces and (the batch the model before takes, the feed's batch).
    """
    out = []
    for feed in feeds:
        size: int | None = None
        for n, a in feed.items():
            s = by_name.get(n)
            if s is None or len(s.shape) != a.ndim:
                return None
            if fits(s, a.shape):
                continue
            if not a.ndim or not fits(s, (s.shape[0], *a.shape[1:])) or not is_static(s.shape[0]):
                return None
            b0 = int(s.shape[0])
            if a.shape[0] % b0 or (size is not None and size != a.shape[0]):
                return None
            size = a.shape[0]
        if size is None:
            return None
        b0 = next(int(by_name[n].shape[0]) for n, a in feed.items() if not fits(by_name[n], a.shape))
        out.append(([{n: (a[k:k + b0] if not fits(by_name[n], a.shape) else a) for n, a in feed.items()}
                     for k in range(0, size, b0)], (b0, size)))
    return out


def _renamed(mapping: dict[str, Any], renamed_in: dict[str, str]) -> dict[str, Any]:
    """Keys named as the model after a pass names its inputs (``renamed_in``: new → old)."""
    if not renamed_in:
        return mapping
    old_to_new = {old: new for new, old in renamed_in.items()}
    return {old_to_new.get(k, k): v for k, v in mapping.items()}


def _merge_static(specs: Sequence[InputSpec], given: dict[str, Shape]) -> dict[str, Shape]:
    """``--input-shapes`` with the graph's static dims winning: verification feeds what the model takes."""
    out: dict[str, Shape] = {}
    by_name = {s.name: s for s in specs}
    for name, dims in given.items():
        s = by_name.get(name)
        if s is None or len(s.shape) != len(dims):
            out[name] = dims
            continue
        out[name] = tuple(d if is_static(d) else g for d, g in zip(s.shape, dims, strict=True))
    return out


def _lower(text: str) -> str:
    """'onnxruntime failed ...' as the tail of a sentence."""
    for head in ("onnxruntime failed to run the model: ", "onnxruntime cannot load the model: "):
        if text.startswith(head):
            verb = "fails on onnxruntime: " if "run" in head else "does not load in onnxruntime: "
            return verb + text[len(head):]
    return text


def check_shapes(given: dict[str, Shape] | None) -> dict[str, Shape]:
    """``--input-shapes`` checked: every number a dimension (positive, fits int32); names allowed as dims."""
    out: dict[str, Shape] = {}
    for name, dims in (given or {}).items():
        checked: list[int | str] = []
        for d in dims:
            if isinstance(d, str) and not d.lstrip("-").isdigit():
                raise UsageError(f"--input-shapes for {name!r} must be positive numbers, got {format_shape(dims)}")
            checked.append(validate.dim(d, f"--input-shapes {name}:{format_shape(dims)}"))
        out[name] = tuple(checked)
    return out


class Snapshot(Instrument):
    """Save the model after each pass as ``NN_passname.onnx`` in a folder."""

    name = "snapshot"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def file_name(index: int, pass_name: str) -> str:
        """The snapshot of pass ``index`` (from 0): ``01_eliminate_dead_code.onnx`` (outputs are planned by it)."""
        return f"{index + 1:02d}_{pass_name}.onnx"

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        path = self.folder / self.file_name(step.index, p.name)
        save_model(result.model, path)
        step.figures[self.name] = str(path)
