"""The public API's entry points: the core's functions with the built-in registries handed in.

The core (``surgery.apply``, ``surgery.search``, ...) never imports ``surgery.passes`` or
``surgery.models``; it receives their registries. These entry points are where a Python
user gets the built-in ones, as the CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import onnx

from surgery.apply import ApplyResult, PassSpec
from surgery.apply import apply as apply_with


def apply(model: onnx.ModelProto | str | os.PathLike, passes: Sequence[PassSpec], **options: Any) -> ApplyResult:
    """:func:`surgery.apply.apply` with the built-in passes, so passes may be given by name.

    ``surgery.apply("m.onnx", ["eliminate_dead_code", ("prune_outputs", {"outputs": "0"})])``;
    every keyword of :func:`surgery.apply.apply` is accepted (``registry=`` replaces the built-in one).
    """
    from surgery.passes import PASSES

    options.setdefault("registry", PASSES)
    return apply_with(model, passes, **options)
