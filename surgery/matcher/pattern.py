"""Patterns in arrow notation: parsing, and attribute values as conditions compare them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import onnx


@dataclass(frozen=True)
class Cond:
    """One attribute condition of a pattern step: ``attr=v1|v2`` or ``attr!=v``."""

    attr: str
    values: tuple[str, ...]
    negate: bool = False

    def text(self) -> str:
        return f"{self.attr}{'!=' if self.negate else '='}{'|'.join(self.values)}"


@dataclass(frozen=True)
class Step:
    """One node of a pattern: op types, optional label, attribute conditions."""

    ops: tuple[str, ...]
    label: str | None = None
    conds: tuple[Cond, ...] = ()
    any_slot: bool = False  # the edge *into* this step reads any input slot, not only input 0

    def text(self) -> str:
        core = "|".join(self.ops)
        if self.conds:
            core += "(" + ", ".join(c.text() for c in self.conds) + ")"
        return f"{self.label}:{core}" if self.label else core


@dataclass(frozen=True)
class Pattern:
    """A parsed arrow-notation pattern: a chain of steps, or one step matched as a group of siblings."""

    steps: tuple[Step, ...]
    fan: bool = False
    source: str = ""

    @property
    def anchor(self) -> Step:
        return self.steps[-1]

    def label_index(self, label: str) -> int | None:
        for k, s in enumerate(self.steps):
            if s.label == label:
                return k
        return None

    def ops_text(self) -> str:
        """The op types only (``Transpose → BatchNormalization → Transpose``): the default count key."""
        if self.fan:
            return "|".join(self.steps[0].ops) + "+"
        return " → ".join("|".join(s.ops) for s in self.steps)

    def text(self) -> str:
        if self.fan:
            return self.steps[0].text() + "+"
        out = self.steps[0].text()
        for s in self.steps[1:]:
            out += (" →* " if s.any_slot else " → ") + s.text()
        return out

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Parse one line of arrow notation (see the module docstring for the grammar).

        Raises:
            ValueError: the text is not a pattern.
        """
        source = text.strip()
        body = source.split("⇒", 1)[0].strip()
        if not body:
            raise ValueError(f"empty pattern in {text!r}")
        body = body.replace("->", "→")
        fan = body.endswith("+")
        if fan:
            body = body[:-1].strip()
        parts = re.split(r"\s*→(\*?)\s*", body)
        # re.split with one group alternates step text and the captured '*' marker
        step_texts, markers = parts[0::2], ["", *parts[1::2]]
        steps = tuple(_parse_step(t, any_slot=(m == "*"), whole=source) for t, m in zip(step_texts, markers,
                                                                                         strict=True))
        if fan and len(steps) != 1:
            raise ValueError(f"a sibling group (Op+) is one step, got {body!r}")
        labels = [s.label for s in steps if s.label]
        if len(labels) != len(set(labels)):
            raise ValueError(f"duplicate labels in pattern {source!r}")
        return cls(steps=steps, fan=fan, source=source)


_STEP = re.compile(r"^(?:(?P<label>[A-Za-z_]\w*):)?(?P<ops>[A-Za-z]\w*(?:\|[A-Za-z]\w*)*)(?:\((?P<conds>[^()]*)\))?$")
_COND = re.compile(r"^(?P<attr>[A-Za-z_]\w*)\s*(?P<op>!=|=)\s*(?P<values>[^,|=]+(?:\|[^,|=]+)*)$")


def _parse_step(text: str, *, any_slot: bool, whole: str) -> Step:
    m = _STEP.match(text.strip())
    if not m:
        raise ValueError(f"bad pattern step {text!r} in {whole!r}")
    conds = []
    if m.group("conds"):
        for part in m.group("conds").split(","):
            c = _COND.match(part.strip())
            if not c:
                raise ValueError(f"bad condition {part.strip()!r} in {whole!r}")
            conds.append(Cond(c.group("attr"), tuple(v.strip() for v in c.group("values").split("|")),
                              negate=c.group("op") == "!="))
    return Step(ops=tuple(m.group("ops").split("|")), label=m.group("label"), conds=tuple(conds),
                any_slot=any_slot)


def pattern_from_doc(doc: str | None) -> Pattern | None:
    """The pattern in the first docstring line, or None when that line has no ``⇒``."""
    if not doc:
        return None
    first = doc.strip().splitlines()[0]
    if "⇒" not in first:
        return None
    return Pattern.parse(first)


@functools.cache
def _schema_default(op_type: str, opset: int, name: str) -> Any:
    try:
        schema = onnx.defs.get_schema(op_type, opset, "")
    except Exception:  # unknown op or opset: no default to offer
        return None
    attr = schema.attributes.get(name)
    if attr is None or attr.default_value.type == onnx.AttributeProto.UNDEFINED:
        return None
    return _py(onnx.helper.get_attribute_value(attr.default_value))


def _py(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_py(v) for v in value]
    return value


def attr_text(value: Any) -> str:
    """An attribute value as pattern conditions compare it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(attr_text(v) for v in value)
    return str(value)
