"""trtexec-style shape strings: ``name:1x3x96x96[,name2:1x10]``.

A dimension may be a positive integer or a symbolic name (``Nx3x96x96``) to mark
it dynamic. Input names may themselves contain ':' (the last ':' separates the shape).
"""

from __future__ import annotations

from surgery.errors import UsageError

Shape = tuple[int | str, ...]


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


def format_shape(shape: Shape | list) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_shapes(shapes: dict[str, Shape]) -> str:
    return ",".join(f"{k}:{format_shape(v)}" for k, v in shapes.items())
