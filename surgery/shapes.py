"""Input shapes: trtexec-style strings, the model's inputs, and the one rule for shapes at a batch.

Shape strings are ``name:1x3x96x96[,name2:1x10]``. A dimension may be a positive integer
or a symbolic name (``Nx3x96x96``) to mark it dynamic. Input names may themselves contain
':' (the last ':' separates the shape).

:func:`shapes_at` is the only place that turns a model's inputs, the user's
``--input-shapes`` and a batch size into concrete shapes. Every target (onnxruntime,
atc, trtexec), verification and evaluation call it, so they all run the same shapes.
The precedence rule, in order:

1. ``--input-shapes`` gives an input's whole shape; the graph's dims fill the inputs it
   does not name (its rank must match the graph's);
2. a batch, when one is asked for (``--batch``), sets axis 0 of every input that has
   one, whatever 1. said: the batch list is what a sweep measures;
3. with no batch asked for, a dynamic axis 0 left unnamed by 1. is 1;
4. any other dynamic axis left is a usage error that says which ``--input-shapes`` to give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from surgery.errors import UsageError
from surgery.validate import MAX_DIM

Shape = tuple[int | str, ...]


@dataclass(frozen=True)
class InputSpec:
    """A model input: name, shape (a ``str`` dim is dynamic; ``"N"`` marks the batch) and numpy dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: Any = "float32"  # normalised to a numpy dtype

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The graph's real inputs (initializers excluded) with their dims and dtypes.

    Raises:
        UsageError: an input that is not a tensor (sequences, maps, optionals).
    """
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if not vi.type.HasField("tensor_type"):
            raise UsageError(f"input {vi.name!r} is not a tensor; only tensor inputs can be generated")
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"input {vi.name!r} has element type {tt.elem_type}, which has no numpy type: "
                             "samples cannot be generated for it") from None
        specs.append(InputSpec(vi.name, dims, dtype))
    return specs


def is_static(dim: int | str) -> bool:
    return isinstance(dim, int) and dim > 0


def shapes_at(specs: Sequence[InputSpec], batch: int | None = None,
              given: Mapping[str, Shape] | None = None) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes by the module's precedence rule (given shapes, then batch, then defaults).

    Args:
        specs: the model's inputs (:func:`model_inputs`, or a recipe's).
        batch: the batch size asked for, or None (verification, a single run).
        given: ``--input-shapes``, parsed.

    Raises:
        UsageError: an unknown input name, a rank mismatch, a symbolic size given, or a
            dynamic axis other than the batch with no size given.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise UsageError(f"--input-shapes names {', '.join(unknown)}, not an input of the model "
                         f"(inputs: {', '.join(s.name for s in specs)})")
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        dims: list[int | str] = list(spec.shape)
        if spec.name in given:
            named = given[spec.name]
            if spec.shape and len(named) != len(spec.shape):
                raise UsageError(f"input {spec.name!r} has rank {len(spec.shape)}, "
                                 f"--input-shapes gives {format_shape(named)}")
            if any(not is_static(d) for d in named):
                raise UsageError(f"--input-shapes for {spec.name!r} must be positive numbers, "
                                 f"got {format_shape(named)}")
            dims = list(named)
        if dims and batch is not None:
            dims[0] = batch
        elif dims and not is_static(dims[0]):
            dims[0] = 1
        for axis, d in enumerate(dims):
            if not is_static(d):
                example = format_shape([x if is_static(x) else "N" for x in dims])
                raise UsageError(f"input {spec.name!r} has a dynamic axis {axis} ({d!r}): give its size with "
                                 f"--input-shapes {spec.name}:{example}")
        out[spec.name] = tuple(int(d) for d in dims)
    return out


def parse_batches(text: str | Sequence[int] | None, default: Sequence[int] = ()) -> tuple[int, ...]:
    """``"1,4,8"`` (or integers) → (1, 4, 8): positive, no duplicates, order kept; None → ``default``.

    Raises:
        UsageError: an empty item, a non-positive or non-integer size, a duplicate, or nothing at all.
    """
    if text is None:
        items: list[Any] = list(default)
    else:
        items = text.split(",") if isinstance(text, str) else list(text)
    out: list[int] = []
    for item in items:
        s = str(item).strip()
        if not s.isdigit() or int(s) <= 0 or len(s) > 7:
            raise UsageError(f"bad batch size {s!r}: expected positive integers such as 1,4,8,16,32")
        if int(s) in out:
            raise UsageError(f"batch size {s} given twice")
        out.append(int(s))
    if not out:
        raise UsageError("no batch sizes given (e.g. --batch 1,4,8,16,32)")
    return tuple(out)


def parse_shape(text: str) -> Shape:
    """Parse ``1x3x96x96`` (a scalar is the empty string or ``scalar``)."""
    text = text.strip()
    if text in ("", "scalar"):
        return ()
    dims: list[int | str] = []
    for part in text.split("x"):
        part = part.strip()
        if not part:
            raise UsageError(f"bad shape {text!r}: empty dimension (expected e.g. 1x3x224x224)")
        if part.lstrip("-").isdigit():
            value = int(part)
            if value < 0:
                raise UsageError(f"bad shape {text!r}: negative dimension {value}")
            if value > MAX_DIM:  # runtimes index with int32; numpy refuses such sizes with an internal error
                raise UsageError(f"bad shape {text!r}: dimension {part} is over {MAX_DIM:,}")
            dims.append(value)
        elif part.isidentifier():
            dims.append(part)
        else:
            raise UsageError(f"bad shape {text!r}: dimension {part!r} is neither a number nor a name")
    return tuple(dims)


def parse_shapes(text: str | list[str] | tuple[str, ...] | None) -> dict[str, Shape]:
    """Parse ``name:1x3x96x96,name2:1x10`` (or a list of such strings) into {name: shape}."""
    if not text:
        return {}
    items: list[str] = []
    for chunk in [text] if isinstance(text, str) else list(text):
        items.extend(s for s in chunk.split(",") if s.strip())
    shapes: dict[str, Shape] = {}
    for item in items:
        name, sep, dims = item.strip().rpartition(":")
        if not sep or not name:
            raise UsageError(f"bad shape {item!r}: expected NAME:DIMS such as input:1x3x224x224")
        if name in shapes:
            raise UsageError(f"shape for {name!r} given twice")
        shapes[name] = parse_shape(dims)
    return shapes


def format_shape(shape: Sequence[int | str]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_shapes(shapes: Mapping[str, Sequence[int | str]]) -> str:
    return ",".join(f"{k}:{format_shape(v)}" for k, v in shapes.items())
