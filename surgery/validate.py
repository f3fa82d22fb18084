"""One validator per kind of value, shared by every verb and by the Python API.

Each takes the value (a number, or the text the user typed) and the name to blame
(``--atol``, ``pass fix_shapes: batch``) and returns it checked and typed, or raises a
:class:`~surgery.errors.UsageError` whose one-line message names the bad value. The CLI's
argparse ``type=`` functions (:func:`arg`) and the library's own checks call the same
functions, so ``surgery apply --atol nan`` and ``surgery.apply(..., atol=float("nan"))``
fail with the same words.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from surgery.errors import UsageError

T = TypeVar("T")

MAX_SEED = 2**32 - 1  # numpy's default_rng accepts any non-negative int; keep seeds portable
MAX_DIM = 2**31 - 1  # ONNX dims are int64, but every runtime we drive indexes with int32
MAX_COUNT = 10**7  # samples, iterations, batch sizes: beyond this a typo, not a plan
MAX_SECONDS = 7 * 24 * 3600.0
# the most memory generated inputs may take (bytes); SURGERY_MAX_INPUT_BYTES overrides it
DEFAULT_MAX_INPUT_BYTES = 8 * 2**30


def _number(value: Any, name: str, kind: type) -> Any:
    if isinstance(value, bool):
        raise UsageError(f"{name} expects a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            return kind(text) if kind is float else int(text, 10)
        except ValueError:
            raise UsageError(f"{name} expects {'a number' if kind is float else 'an integer'}, "
                             f"got {value!r}") from None
    if kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise UsageError(f"{name} expects an integer, got {value!r}")
            return int(value)
        if not isinstance(value, int):
            try:
                return int(value)  # numpy integers
            except (TypeError, ValueError):
                raise UsageError(f"{name} expects an integer, got {value!r}") from None
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} expects a number, got {value!r}") from None


def tolerance(value: Any, name: str = "tolerance") -> float:
    """A finite, non-negative tolerance (``--atol``, ``--rtol``)."""
    x = _number(value, name, float)
    if not math.isfinite(x) or x < 0:
        raise UsageError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number within ``[minimum, maximum]`` (each bound optional)."""
    x = _number(value, name, float)
    if not math.isfinite(x):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and x < minimum:
        raise UsageError(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and x > maximum:
        raise UsageError(f"{name} must be <= {maximum:g}, got {value!r}")
    return x


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer within ``[minimum, maximum]`` (each bound optional)."""
    n = _number(value, name, int)
    if minimum is not None and n < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and n > maximum:
        raise UsageError(f"{name} must be <= {maximum:,}, got {value!r}")
    return n


def count(value: Any, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """A count of things: samples, iterations, warm-up calls (``minimum=0``), batch sizes."""
    return integer(value, name, minimum=minimum, maximum=maximum)


def seed(value: Any, name: str = "--seed") -> int:
    """A random seed: an integer in [0, 2**32 - 1]."""
    return integer(value, name, minimum=0, maximum=MAX_SEED)


def seconds(value: Any, name: str, *, allow_zero: bool = False, maximum: float = MAX_SECONDS) -> float:
    """A finite duration in seconds, > 0 (or >= 0 with ``allow_zero``), at most a week by default."""
    x = _number(value, name, float)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise UsageError(f"{name} must be a finite number of seconds {'>=' if allow_zero else '>'} 0, got {value!r}")
    if x > maximum:
        raise UsageError(f"{name} must be at most {maximum:g} seconds, got {value!r}")
    return x


def fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0, open_low: bool = False,
             open_high: bool = False) -> float:
    """A finite number in [low, high] (ends optionally open): a confidence, a precision, a min effect."""
    x = _number(value, name, float)
    bad = (not math.isfinite(x) or x < low or x > high or (open_low and x == low) or (open_high and x == high))
    if bad:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise UsageError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value!r}")
    return x


def max_threads() -> int:
    """The most threads a session may ask for: 4 per core (more only thrashes; 100000 never returns)."""
    return max(4 * (os.cpu_count() or 1), 64)


def threads(value: Any, name: str = "--threads") -> int:
    """A thread count: 0 (the runtime's default) up to :func:`max_threads`."""
    return integer(value, name, minimum=0, maximum=max_threads())


def dim(value: Any, name: str) -> int:
    """One tensor dimension: a positive integer that fits int32."""
    return integer(value, name, minimum=1, maximum=MAX_DIM)


def max_input_bytes() -> int:
    """The memory generated inputs may take (``SURGERY_MAX_INPUT_BYTES``, default 8 GiB)."""
    text = os.environ.get("SURGERY_MAX_INPUT_BYTES")
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise UsageError(f"SURGERY_MAX_INPUT_BYTES must be a number of bytes, got {text!r}") from None
    return DEFAULT_MAX_INPUT_BYTES


DEFAULT_RUN_SECONDS = 600.0


def max_run_seconds() -> float:
    """How long one verification run of a model may take (``SURGERY_VERIFY_TIMEOUT``, default 600 s).

    A model can ask for a Loop of two billion iterations; verification must end with a
    message, not wait for it.
    """
    text = os.environ.get("SURGERY_VERIFY_TIMEOUT")
    return seconds(text, "SURGERY_VERIFY_TIMEOUT") if text else DEFAULT_RUN_SECONDS


def input_bytes(shapes: dict[str, tuple[int, ...]], itemsizes: dict[str, int], *, copies: int = 1,
                what: str = "the inputs") -> int:
    """Bytes that ``copies`` feeds of these shapes take; a usage error above :func:`max_input_bytes`."""
    total = 0
    for name, shape in shapes.items():
        total += math.prod(shape) * max(1, itemsizes.get(name, 4))
    total *= max(1, copies)
    limit = max_input_bytes()
    if total > limit:
        biggest = max(shapes, key=lambda n: math.prod(shapes[n]) * itemsizes.get(n, 4))
        dims = "x".join(map(str, shapes[biggest]))
        raise UsageError(f"{what} would take {total / 2**30:.1f} GiB ({biggest}:{dims}), over the "
                         f"{limit / 2**30:.1f} GiB limit (set SURGERY_MAX_INPUT_BYTES to raise it)")
    return total


def path(value: Any, name: str) -> str:
    """A path as text: non-empty, no NUL byte (the OS would refuse it with an error no user should see)."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise UsageError(f"{name} expects a path, got {value!r}")
    if not text:
        raise UsageError(f"{name} is an empty path")
    if "\x00" in text:
        raise UsageError(f"{name} {text!r} contains a NUL byte")
    return text


def existing_file(value: Any, name: str) -> str:
    """A path to an existing regular file (an input: a checkpoint, a sample file)."""
    text = path(value, name)
    if not os.path.exists(text):
        raise UsageError(f"{name} file not found: {text}")
    if not os.path.isfile(text):
        raise UsageError(f"{name} {text} is not a file")
    return text


def existing_folder(value: Any, name: str) -> str:
    """A path to an existing folder (a tuned bank, a dataset root)."""
    text = path(value, name)
    if not os.path.exists(text):
        raise UsageError(f"{name} folder not found: {text}")
    if not os.path.isdir(text):
        raise UsageError(f"{name} {text} is not a folder")
    return text


def one_of(value: str, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def arg(check: Callable[..., T], name: str, **kwargs: Any) -> Callable[[str], T]:
    """An argparse ``type=`` function that runs ``check(text, name, **kwargs)``.

    The UsageError it raises propagates through argparse (which only catches ValueError,
    TypeError and ArgumentTypeError), so the CLI prints its one line and exits 2.
    """
    def parse(text: str) -> T:
        return check(text, name, **kwargs)

    parse.__name__ = getattr(check, "__name__", "value")  # argparse names the type in its own messages
    return parse
