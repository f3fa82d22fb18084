"""Float → static INT8 in QDQ form, on onnxruntime's quantization tooling. Inexact: outputs change on purpose.

    x → Conv(W, b) → y   →   x → Q → DQ → Conv(DQ(W_int8), DQ(b_int32)) → Q → DQ → y

What runs, in order (everything after step 1 is onnxruntime's own, not a hand-written quantizer):

1. the opset is raised to 13 when weights are quantized per channel (DequantizeLinear's
   ``axis`` is opset 13), by the ``convert_opset`` pass (onnx's version converter), and the
   converted model is checked against the original on one calibration sample;
2. ``quant_pre_process`` (symbolic and onnx shape inference, onnxruntime's basic graph
   optimisation: BatchNormalization folded into Conv, constants folded), the preprocessing
   onnxruntime recommends before quantizing;
3. calibration (``minmax``, ``entropy`` or ``percentile``) on ``samples`` inputs: generated
   in the model's input distribution by default (synthetic images normalised as the
   recipe does, see :mod:`surgery.calibration`), or read from ``calib=DIR``;
4. ``quantize_static`` in QDQ format: int8 weights (per channel by default), uint8
   activations (U8S8, what onnxruntime's x86 kernels are fast with: on this repo's
   reference host, an AVX-512 VNNI Xeon, the PP-OCRv4 detector ran 1.27x faster than float
   with U8S8 and 0.62x with S8S8; ``activations=int8`` for hosts and NPUs that want S8S8),
   the nodes and op types given in ``exclude_*`` left in float.

The result says which nodes became int8 and which stayed float and why (counts and
notes). Weighted int8 nodes (Conv, ConvTranspose, Gemm, MatMul) are the *layers* an
accuracy budget's fallback returns to float one by one (:meth:`QuantizeInt8.layers`,
:meth:`QuantizeInt8.keeping`). Node names are those after step 2.

Calibration ranges and the preprocessed model can be kept in ``cache_dir`` (keyed by the
model's digest and the options they depend on), so variants that only exclude more nodes
skip steps 1-3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import onnx

from surgery import validate
from surgery.calibration import DISTRIBUTIONS, CalibrationSource, Feed, Generated, source_for
from surgery.errors import PassError, UsageError, first_line
from surgery.graph import is_large, model_digest, opset_version
from surgery.parity import Session, compare_arrays
from surgery.pass_infra import Pass, PassResult, option
from surgery.shapes import InputSpec, model_inputs, parse_shapes, shapes_at

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
PER_CHANNEL_OPSET = 13  # DequantizeLinear got its axis attribute in opset 13
MIN_OPSET = 11  # what onnxruntime's quantizer itself converts older models to
CONVERSION_TOLERANCE = 1e-4  # opset conversion must not move outputs (relative and absolute, float32 noise)
METHODS = ("minmax", "entropy", "percentile")


def quantizable_op_types() -> frozenset[str]:
    """Op types onnxruntime's static quantizer can quantize (its QDQ and QOperator registries)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return frozenset(QDQRegistry) | frozenset(QLinearOpsRegistry)


@dataclass(frozen=True, kw_only=True)
class QuantizeInt8(Pass):
    """Static INT8 quantization (QDQ, per-channel weights) on onnxruntime's tooling, calibrated (inexact)."""

    name: ClassVar[str] = "quantize_int8"
    exact: ClassVar[bool] = False

    method: Literal["minmax", "entropy", "percentile"] = option(
        "minmax", help="calibration: minmax (observed range), entropy (KL), percentile")
    percentile: float = option(99.999, help="the percentile kept by method=percentile")
    per_channel: bool = option(True, help="one weight scale per output channel (raises the opset to 13)")
    activations: Literal["int8", "uint8"] = option("uint8", help="activation type (uint8: U8S8, fast on x86 CPUs; "
                                                                 "int8: S8S8)")
    weights: Literal["int8", "uint8"] = option("int8", help="weight type")
    reduce_range: bool = option(False, help="7-bit weights (CPUs without VNNI may saturate at 8)")
    samples: int = option(16, help="calibration samples")
    seed: int = option(0, help="seed of the first generated calibration sample")
    calib: str | None = option(None, help="a folder of calibration inputs (.npz / .npy / .bin arrays); "
                                          "default: generated in the model's input distribution")
    distribution: str = option("auto", help="generated inputs: auto (imagenet for 1/3-channel NCHW floats), "
                                            "imagenet, imagenet_div255, unit, pixels, uniform",
                               choices=DISTRIBUTIONS)
    shapes: str | None = option(None, help="sizes for dynamic input dims, trtexec syntax: x:1x3x224x224")
    exclude_nodes: tuple[str, ...] = option((), help="node names to leave in float")
    exclude_regex: str | None = option(None, help="leave in float the nodes whose name matches this regex")
    exclude_ops: tuple[str, ...] = option((), help="op types to leave in float, e.g. Resize,Add")
    op_types: tuple[str, ...] = option((), help="quantize only these op types (default: all onnxruntime can)")
    preprocess: bool = option(True, help="run onnxruntime's quant_pre_process (shape inference, BN folding)")
    cache_dir: str | None = option(None, help="keep the preprocessed model and calibration ranges here, keyed "
                                              "by model digest and options")

    def validate(self) -> None:
        where = f"pass {self.name}"
        validate.count(self.samples, f"{where}: samples", maximum=100_000)
        validate.seed(self.seed, f"{where}: seed")
        validate.fraction(self.percentile, f"{where}: percentile", low=50.0, high=100.0, open_high=False)
        if self.exclude_regex is not None:
            try:
                re.compile(self.exclude_regex)
            except re.error as exc:
                raise UsageError(f"{where}: bad exclude_regex {self.exclude_regex!r}: {exc}") from None
        if self.shapes:
            parse_shapes(self.shapes)
        unknown = sorted(set(self.op_types) - quantizable_op_types())
        if unknown:
            raise UsageError(f"{where}: op_types {', '.join(unknown)} cannot be quantized by onnxruntime "
                             f"(it can: {', '.join(sorted(quantizable_op_types()))})")
        if self.calib is not None and self.distribution != "auto":
            raise UsageError(f"{where}: distribution= shapes generated inputs; calib={self.calib} reads them")

    # -- what the budget's fallback needs ------------------------------------------------
    def layers(self, model: onnx.ModelProto) -> list[str]:
        """The weighted nodes this pass made int8 in ``model`` (its output), in graph order."""
        made = _producers(model)
        return [n.name for n in model.graph.node if n.name and n.op_type in WEIGHTED_OPS and _int8_weight(n, made)]

    def keeping(self, layers: Sequence[str], *, cache_dir: str | None = None) -> QuantizeInt8:
        """The same pass leaving ``layers`` (node names) in float as well, optionally caching in ``cache_dir``."""
        names = tuple(dict.fromkeys((*self.exclude_nodes, *layers)))
        return dataclasses.replace(self, exclude_nodes=names, cache_dir=cache_dir or self.cache_dir)

    def source(self) -> CalibrationSource:
        """Where the calibration inputs come from."""
        return source_for(self.calib, distribution=self.distribution, seed=self.seed)

    # -- the pass ------------------------------------------------------------------------
    def call(self, model: onnx.ModelProto) -> PassResult:
        present = Counter(n.op_type for n in model.graph.node if n.op_type in QDQ_OPS)
        if present:  # idempotent: quantizing a QDQ model again would quantize the dequantized weights
            what = ", ".join(f"{op} {n}" for op, n in sorted(present.items()))
            return PassResult(model, changed=False, notes=[f"already quantized ({what}): nothing to do"])
        specs = model_inputs(model)
        shapes = shapes_at(specs, None, parse_shapes(self.shapes) if self.shapes else None)
        source = self.source()
        started = time.perf_counter()
        feeds = list(source.feeds(specs, shapes, self.samples))
        if not feeds:
            raise UsageError(f"pass {self.name}: no calibration samples from {source.describe()}")
        notes: list[str] = []
        big = is_large(model)  # ByteSize() serialises the whole model and fails above 2 GB
        with tempfile.TemporaryDirectory(prefix="surgery-int8-") as tmp, _captured_logs() as logged, \
                _scratch_cwd(Path(tmp) / "cwd"):
            cache = Path(self.cache_dir).resolve() if self.cache_dir else Path(tmp)
            cache.mkdir(parents=True, exist_ok=True)
            prepared_path, prepared = self._prepared(model, feeds, cache, big, notes)
            calib_json = cache / f"{self._calibration_key(model, source, shapes)}.calib.json"
            reused = calib_json.is_file()
            if reused:
                notes.append(f"calibration ranges reused from {calib_json.name} ({len(feeds)} samples, "
                             f"{_describe(source, specs, shapes)})")
            out_path = Path(tmp) / "quantized.onnx"
            excluded = self._excluded_names(prepared)
            self._quantize(prepared_path, out_path, feeds, excluded, calib_json, big)
            quantized = onnx.load(str(out_path))
        if not reused:
            notes.append(f"calibrated with {self.method} on {len(feeds)} samples: {_describe(source, specs, shapes)}")
        notes.extend(f"onnxruntime: {line}" for line in _interesting(logged))
        _drop_unused_opsets(quantized)
        report = _Report.of(prepared, quantized, self, excluded)
        notes.extend(report.notes())
        notes.append(f"quantized in {time.perf_counter() - started:.2f} s")
        model.CopyFrom(quantized)
        return PassResult(model, changed=True, counts=report.counts(), notes=notes)

    # -- steps ---------------------------------------------------------------------------
    def _prepared(self, model: onnx.ModelProto, feeds: list[Feed], cache: Path, big: bool,
                  notes: list[str]) -> tuple[Path, onnx.ModelProto]:
        """Steps 1-2: opset raised and verified, quant_pre_process; cached by digest in ``cache``."""
        target = max(opset_version(model), PER_CHANNEL_OPSET if self.per_channel else MIN_OPSET)
        key = _key({"digest": model_digest(model), "opset": target, "preprocess": self.preprocess})
        path = cache / f"{key}.pre.onnx"
        if path.is_file():
            notes.append(f"preprocessed model reused from {path.name}")
            return path, onnx.load(str(path))
        work = model
        before = opset_version(model)
        if target != before:
            work = _convert_opset(model, target, feeds[0])
            notes.append(f"opset raised {before} → {target} by convert_opset (per-channel QDQ needs "
                         "DequantizeLinear's axis), outputs checked on one sample")
        if self.preprocess:
            work = _preprocess(work, big, notes)
        _drop_unused_opsets(work)
        _save(work, path, big)
        return path, work

    def _calibration_key(self, model: onnx.ModelProto, source: CalibrationSource,
                         shapes: dict[str, tuple[int, ...]]) -> str:
        return _key({"digest": model_digest(model), "per_channel": self.per_channel, "preprocess": self.preprocess,
                     "method": self.method, "percentile": self.percentile if self.method == "percentile" else None,
                     "samples": self.samples, "source": source.describe(), "shapes": shapes,
                     "op_types": sorted(self._op_types())})

    def _op_types(self) -> set[str]:
        chosen = set(self.op_types) if self.op_types else set(quantizable_op_types())
        return chosen - set(self.exclude_ops)

    def _excluded_names(self, prepared: onnx.ModelProto) -> set[str]:
        names = set(self.exclude_nodes)
        if self.exclude_regex is not None:
            pattern = re.compile(self.exclude_regex)
            names |= {n.name for n in prepared.graph.node if n.name and pattern.search(n.name)}
        return names

    def _quantize(self, prepared: Path, out: Path, feeds: list[Feed], excluded: set[str], calib_json: Path,
                  big: bool) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}
        # calibrate in strides: every stride's intermediate tensors are merged and freed (memory stays bounded)
        stride = next(d for d in (4, 3, 2, 1) if len(feeds) % d == 0)
        extra: dict[str, object] = {"CalibStridedMinMax": stride}
        if self.method == "percentile":
            extra["CalibPercentile"] = self.percentile
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress lines
                quantize_static(str(prepared), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=sorted(self._op_types()), per_channel=self.per_channel,
                                reduce_range=self.reduce_range, activation_type=types[self.activations],
                                weight_type=types[self.weights], nodes_to_exclude=sorted(excluded),
                                use_external_data_format=big, calibrate_method=methods[self.method],
                                extra_options=extra, calibration_cache_path=str(calib_json))
        except Exception as exc:  # onnxruntime raises bare ValueError/RuntimeError; name where it happened
            raise PassError(f"onnxruntime's quantize_static failed: {type(exc).__name__}: {first_line(exc, 300)}",
                            self.name) from exc


def _describe(source: CalibrationSource, specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]]) -> str:
    if isinstance(source, Generated) and source.distribution == "auto":  # say what "auto" chose
        chosen = ", ".join(f"{s.name}: {source.resolved(s, shapes[s.name])}" for s in specs)
        return f"generated inputs ({chosen}; seed {source.seed})"
    return source.describe()


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of feeds, with the ranges strided calibration asks for."""

    def __init__(self, feeds: list[Feed]):
        self.feeds, self.pos, self.end = feeds, 0, len(feeds)

    def get_next(self) -> Feed | None:
        if self.pos >= self.end:
            return None
        self.pos += 1
        return self.feeds[self.pos - 1]

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self) -> Iterator[Feed]:
        while (item := self.get_next()) is not None:
            yield item

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pos, self.end = start_index, min(end_index, len(self.feeds))


# ---------------------------------------------------------------------------------------
# steps 1-2


def _convert_opset(model: onnx.ModelProto, target: int, feed: Feed) -> onnx.ModelProto:
    """``model`` at opset ``target`` (the convert_opset pass), outputs checked against the original on ``feed``."""
    from .convert_opset import ConvertOpset

    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    try:
        ConvertOpset(target=target)(converted)
    except PassError as exc:
        raise PassError(f"cannot raise the opset {opset_version(model)} → {target} for per-channel QDQ "
                        f"({exc.detail}); use per_channel=false to stay at this opset", QuantizeInt8.name) from exc
    try:
        before = Session(model).run(feed)
        after = Session(converted).run(feed)
    except RuntimeError as exc:
        raise PassError(f"the model converted to opset {target} does not run: {exc}; use per_channel=false",
                        QuantizeInt8.name) from None
    for name, expected in before.items():
        diff = compare_arrays(name, [expected], [after[name]], CONVERSION_TOLERANCE, CONVERSION_TOLERANCE)
        if not diff.passed:
            raise PassError(f"onnx's version converter changed output {name!r} when raising the opset to {target} "
                            f"(max abs {diff.max_abs:.3g}); use per_channel=false to stay at this opset",
                            QuantizeInt8.name)
    return converted


@contextlib.contextmanager
def _scratch_cwd(folder: Path) -> Iterator[None]:
    """Run in a scratch working folder: onnxruntime's quantization tools drop files in the current one
    (``sym_shape_infer_temp.onnx`` and a ``<uuid>.data`` copy of the weights), which is the user's."""
    folder.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _preprocess(model: onnx.ModelProto, big: bool, notes: list[str]) -> onnx.ModelProto:
    """onnxruntime's quant_pre_process; without symbolic shape inference when that fails; skipped when all fails."""
    with tempfile.TemporaryDirectory(prefix="surgery-int8-pre-") as tmp:
        return _preprocess_in(model, Path(tmp), big, notes)


def _preprocess_in(model: onnx.ModelProto, work: Path, big: bool, notes: list[str]) -> onnx.ModelProto:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = work / "pre-in.onnx", work / "pre-out.onnx"
    _save(model, src, big)
    before = len(model.graph.node)
    for symbolic in (True, False):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=not symbolic, save_as_external_data=big,
                              all_tensors_to_one_file=True, external_data_location=f"{dst.name}.data")
        except Exception as exc:
            notes.append(f"quant_pre_process{'' if symbolic else ' without symbolic shape inference'} failed: "
                         f"{type(exc).__name__}: {first_line(exc, 160)}")
            continue
        out = onnx.load(str(dst))
        folded = Counter(n.op_type for n in model.graph.node) - Counter(n.op_type for n in out.graph.node)
        gone = ", ".join(f"{k} {v}" for k, v in sorted(folded.items())) or "none"
        notes.append(f"preprocessed with onnxruntime's quant_pre_process{'' if symbolic else ' (no symbolic shapes)'}"
                     f": {before} → {len(out.graph.node)} nodes (removed or folded: {gone})")
        return out
    notes.append("quantizing without preprocessing")
    return model


def _save(model: onnx.ModelProto, path: Path, big: bool) -> None:
    if big:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{path.name}.data")
    else:
        onnx.save_model(model, str(path))


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    """Keep the default domain and the domains nodes use (onnxruntime's optimiser writes every domain it knows)."""
    used = {n.domain for n in model.graph.node} | {f.domain for f in model.functions} | {""}
    used |= {"ai.onnx"} if "ai.onnx" in used else set()
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[str]]:
    """Collect what onnxruntime's quantization tools log (they use the root logger) instead of printing it."""
    lines: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)  # with a handler present, logging's last-resort stderr printer stays silent
    root.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def _interesting(lines: list[str]) -> list[str]:
    """The logged lines worth a note: first lines, deduplicated, without the 'please pre-process' reminder."""
    out: list[str] = []
    for line in lines:
        first = line.strip().splitlines()[0][:200] if line.strip() else ""
        if first and "pre-process" not in first and "preprocess" not in first.lower() and first not in out:
            out.append(first)
    return out[:5]


# ---------------------------------------------------------------------------------------
# what was quantized, and why the rest was not


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in model.graph.node for out in n.output}


def _from_dq(name: str, producers: dict[str, onnx.NodeProto]) -> bool:
    return name in producers and producers[name].op_type == "DequantizeLinear"


def _dq_fed(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> bool:
    return any(_from_dq(i, producers) for i in node.input)


def _int8_weight(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> bool:
    """A weighted node whose data and weight both come through DequantizeLinear: it runs in int8."""
    return len(node.input) > 1 and _from_dq(node.input[0], producers) and _from_dq(node.input[1], producers)


@dataclass
class _Report:
    int8: Counter[str]
    float_reasons: dict[str, Counter[str]]  # reason -> op type counts
    examples: dict[str, list[str]]  # reason -> a few node names
    qdq: Counter[str]
    folded: Counter[str]  # op types of the preprocessed model the quantizer removed
    missing_exclusions: list[str]

    @classmethod
    def of(cls, prepared: onnx.ModelProto, quantized: onnx.ModelProto, p: QuantizeInt8,
           excluded: set[str]) -> _Report:
        producers = _producers(quantized)
        quantizable = quantizable_op_types()
        chosen = set(p.op_types)
        int8: Counter[str] = Counter()
        reasons: dict[str, Counter[str]] = defaultdict(Counter)
        examples: dict[str, list[str]] = defaultdict(list)
        for node in quantized.graph.node:
            if node.op_type in QDQ_OPS or node.op_type in ("Constant", "Shape", "Identity"):
                continue  # the quantization itself, and bookkeeping ops with no arithmetic to quantize
            if node.name in excluded:
                reason = "excluded by name (exclude_nodes / exclude_regex, or a budget's fallback)"
            elif node.op_type in p.exclude_ops:
                reason = "excluded by op type (exclude_ops)"
            elif chosen and node.op_type not in chosen:
                reason = "not among op_types"
            elif node.op_type not in quantizable:
                reason = "no int8 form in onnxruntime's quantizer"
            elif (_int8_weight(node, producers) if node.op_type in WEIGHTED_OPS else _dq_fed(node, producers)):
                int8[node.op_type] += 1
                continue
            else:
                reason = "onnxruntime's quantizer kept it float (its input is not quantized, or no range)"
            reasons[reason][node.op_type] += 1
            if len(examples[reason]) < 3:
                examples[reason].append(node.name or "(unnamed)")
        qdq = Counter(n.op_type for n in quantized.graph.node if n.op_type in QDQ_OPS)
        # Relu/Clip after a quantized op vanish: the activation's range already clips (asymmetric Q)
        folded = (Counter(n.op_type for n in prepared.graph.node if n.op_type not in QDQ_OPS)
                  - Counter(n.op_type for n in quantized.graph.node if n.op_type not in QDQ_OPS))
        names = {n.name for n in prepared.graph.node}
        missing = sorted(set(p.exclude_nodes) - names)
        return cls(int8, dict(reasons), dict(examples), qdq, folded, missing)

    def counts(self) -> dict[str, int]:
        out = {f"int8 {op}": n for op, n in sorted(self.int8.items())}
        for ops in self.float_reasons.values():
            for op, n in sorted(ops.items()):
                out[f"float {op}"] = out.get(f"float {op}", 0) + n
        out.update({op: n for op, n in sorted(self.qdq.items())})
        return out

    def notes(self) -> list[str]:
        total = sum(self.int8.values())
        lines = [f"int8: {total} nodes ({', '.join(f'{op} {n}' for op, n in sorted(self.int8.items())) or 'none'})"]
        for reason, ops in self.float_reasons.items():
            what = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
            lines.append(f"float: {what}: {reason} (e.g. {', '.join(self.examples[reason])})")
        if self.folded:
            what = ", ".join(f"{op} {n}" for op, n in sorted(self.folded.items()))
            lines.append(f"folded into the quantization ranges: {what}")
        for name in self.missing_exclusions:
            lines.append(f"exclude_nodes names {name!r}, which is not a node after preprocessing")
        if not total:
            lines.append("nothing was quantized")
        return lines
