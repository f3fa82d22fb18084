"""The pass contract, after onnx-ir's pass infrastructure.

A pass is a frozen dataclass: its fields are its typed, keyword-only options, validated
on construction. ``name``, ``exact`` and the summary (first docstring line) are declared
on the class. ``__call__`` runs ``requires`` → ``call`` → ``ensures``. Passes edit the
model they are given in place and return it in a :class:`PassResult` together with what
they matched and changed (``counts``) and why sites were skipped (``notes``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import onnx

from surgery import validate
from surgery.errors import (
    PassError,
    PostconditionError,
    SurgeryError,
    UnknownNameError,
    UsageError,
    first_line,
)


def option(default: Any = dataclasses.MISSING, *, help: str, choices: tuple[str, ...] | None = None,
           minimum: float | None = None, maximum: float | None = None) -> Any:
    """Declare a pass option: a dataclass field with a help line, choices for ``str`` options, bounds for numbers.

    Numbers are checked on construction: ints within ``[minimum, maximum]`` (default: what
    an int64 attribute holds), floats finite and within their bounds.
    """
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default for list options")
    return field(default=default, metadata=meta)


@dataclass
class PassResult:
    """What a pass did: the model, whether it changed, counts of what it matched and rewrote, and notes.

    An exact pass keeps the graph's inputs and outputs (names, dtypes, ranks) unless it
    declares the change here; the instruments fail any change it did not declare.

    Attributes:
        renamed_outputs: graph outputs renamed, new name → name before the pass.
        dropped_outputs: graph outputs that are outputs no more (prune_outputs, truncate).
        added_outputs: new graph outputs that were intermediate tensors before (truncate); they are
            compared with the same tensors of the model before the pass.
        reordered_outputs: the pass changed the order of the graph outputs on purpose.
        renamed_inputs: graph inputs renamed, new name → name before the pass.
        warnings: what the user must see whatever the verbosity (batch hazards), unlike ``notes``.
    """

    model: onnx.ModelProto
    changed: bool
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    renamed_outputs: dict[str, str] = field(default_factory=dict)
    dropped_outputs: list[str] = field(default_factory=list)
    added_outputs: list[str] = field(default_factory=list)
    reordered_outputs: bool = False
    renamed_inputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.counts:
            return "no change" if not self.changed else "changed"
        return ", ".join(f"{k} {v}" for k, v in self.counts.items())


@dataclass(frozen=True)
class OptionInfo:
    """One option of a pass, as ``surgery list passes`` shows it."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None
    required: bool
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, kw_only=True)
class Pass:
    """Base class of every pass. Subclasses are frozen dataclasses; their fields are the options."""

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = True
    # tried by ``surgery tune`` when no --passes are named. False for rewrites that are not about
    # speed on the target being tuned (an opset change, Ascend's channel alignment, which adds FLOPs)
    tune_default: ClassVar[bool] = True

    # -- contract --------------------------------------------------------
    def requires(self, model: onnx.ModelProto) -> None:
        """Raise PreconditionError when the model is unfit for this pass."""

    def call(self, model: onnx.ModelProto) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def ensures(self, model: onnx.ModelProto) -> None:
        """Raise PostconditionError when the pass broke its promise."""

    def nonstandard(self) -> str | None:
        """Why this pass's output is, on purpose, not standard ONNX (a vendor workaround), else None.

        The checker and shape inference then report the step unverified, naming this reason,
        instead of failing it; onnxruntime cannot run such a model, so it is compared nowhere.
        """
        return None

    def __call__(self, model: onnx.ModelProto) -> PassResult:
        self.requires(model)
        result = self.call(model)
        if not isinstance(result, PassResult):
            raise PostconditionError(f"returned {type(result).__name__}, not a PassResult", self.name)
        self.ensures(result.model)
        return result

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise UsageError(f"pass {self.name}: option {f.name}={value!r} is not one of {', '.join(choices)}")
            _check_type(self.name, f.name, value, hints[f.name])
            _check_bounds(self.name, f, value)
        self.validate()

    def validate(self) -> None:
        """Cross-option checks; raise UsageError with a one-line message."""

    # -- description -----------------------------------------------------
    @classmethod
    def summary(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @classmethod
    def options(cls) -> list[OptionInfo]:
        hints = _hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            out.append(OptionInfo(
                name=f.name, type=_type_label(hints[f.name]),
                default=None if required else f.default, help=f.metadata.get("help", ""),
                choices=f.metadata.get("choices"), required=required,
                minimum=f.metadata.get("minimum"), maximum=f.metadata.get("maximum"),
            ))
        return out

    def option_values(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_strings(cls, pairs: dict[str, str]) -> Pass:
        """Build the pass from ``{"option": "text"}`` as typed on the command line."""
        hints = _hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, text in pairs.items():
            key_norm = key.replace("-", "_")
            if key_norm not in fields:
                raise UnknownNameError(f"option of pass {cls.name}", key, fields)
            kwargs[key_norm] = parse_option_value(cls.name, key_norm, text, hints[key_norm])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            missing = [n for n, o in ((o.name, o) for o in cls.options()) if o.required and n not in kwargs]
            if missing:
                raise UsageError(f"pass {cls.name} needs option {missing[0]}=... ({_help(cls, missing[0])})") from None
            raise UsageError(f"pass {cls.name}: {exc}") from None


def _help(cls: type[Pass], name: str) -> str:
    return next(o.help for o in cls.options() if o.name == name)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _type_label(tp: Any) -> str:
    inner, _ = _strip_optional(tp)
    origin = typing.get_origin(inner)
    if origin is tuple:
        label = f"list[{_type_label(typing.get_args(inner)[0])}]"
    elif origin is Literal:
        label = "|".join(str(a) for a in typing.get_args(inner))
    else:
        label = getattr(inner, "__name__", str(inner))
    return label


def parse_option_value(pass_name: str, key: str, text: str, tp: Any) -> Any:
    inner, optional = _strip_optional(tp)
    if optional and text.lower() in ("none", ""):
        return None
    origin = typing.get_origin(inner)
    if origin is tuple:
        item_tp = typing.get_args(inner)[0]
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:  # "nodes=" must not mean "every node", which is what leaving it out means
            raise UsageError(f"pass {pass_name}: option {key}= is empty: give a comma-separated list, or leave "
                             "the option out")
        return tuple(parse_option_value(pass_name, key, part, item_tp) for part in parts)
    if inner is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"pass {pass_name}: option {key} expects true/false, got {text!r}")
    if inner in (int, float):
        what = f"pass {pass_name}: option {key}"
        return validate.integer(text, what) if inner is int else validate.number(text, what)
    if origin is Literal:
        allowed = typing.get_args(inner)
        if text not in allowed:
            raise UsageError(f"pass {pass_name}: option {key}={text!r} is not one of {', '.join(map(str, allowed))}")
        return text
    return text


def _check_type(pass_name: str, key: str, value: Any, tp: Any) -> None:
    inner, optional = _strip_optional(tp)
    if value is None:
        if not optional:
            raise UsageError(f"pass {pass_name}: option {key} must be set")
        return
    origin = typing.get_origin(inner)
    if origin is tuple:
        if isinstance(value, (list, str)):
            raise UsageError(f"pass {pass_name}: option {key} must be a tuple, got {type(value).__name__}")
        if not isinstance(value, tuple):
            raise UsageError(f"pass {pass_name}: option {key} must be a tuple")
        return
    if origin is Literal:
        if value not in typing.get_args(inner):
            allowed = ", ".join(map(str, typing.get_args(inner)))
            raise UsageError(f"pass {pass_name}: option {key}={value!r} is not one of {allowed}")
        return
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if isinstance(inner, type) and not isinstance(value, inner):
        raise UsageError(f"pass {pass_name}: option {key} expects {inner.__name__}, got {value!r}")


INT64_MAX = 2**63 - 1  # what an int64 attribute (the widest ONNX integer) can hold


def _check_bounds(pass_name: str, f: dataclasses.Field, value: Any) -> None:
    """Numbers within the option's bounds: ints fit int64, floats are finite (a NaN threshold never matches)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    what = f"pass {pass_name}: option {f.name}"
    low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
    if isinstance(value, int):
        validate.integer(value, what, minimum=-INT64_MAX if low is None else int(low),
                         maximum=INT64_MAX if high is None else int(high))
    else:
        validate.number(value, what, minimum=low, maximum=high)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def wrap_error(exc: Exception, pass_name: str, before: list[str]) -> SurgeryError:
    """Re-raise any failure inside a pass as a PassError naming it and the passes before it."""
    if isinstance(exc, PassError):
        return exc if exc.pass_name else type(exc)(exc.detail, pass_name, before)
    if isinstance(exc, SurgeryError):
        # keep the class (and so the exit code: a bad option is still a usage error), add where it happened
        after = f"after {', '.join(before)}" if before else "the first pass"
        exc.args = (f"pass {pass_name} ({after}): {exc}",)
        return exc
    return PassError(f"{type(exc).__name__}: {first_line(exc)}", pass_name, before)
