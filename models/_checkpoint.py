"""Load an upstream checkpoint into a zoo network: weights only, strict by default, every mismatch named.

Accepted layouts: a plain state_dict, ``{'state_dict': ...}`` (mmseg, with ``'meta'``; also
training checkpoints with ``'optimizer'`` beside it) and ``{'model': ...}``. A ``module.``
prefix (DataParallel) is stripped. ``num_batches_tracked`` buffers may be absent: torch's
BatchNorm does not need them for inference.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from surgery.errors import ModelLoadError, first_line

if TYPE_CHECKING:
    from torch import nn

WRAPPER_KEYS = ("state_dict", "model")
OPTIONAL_SUFFIXES = ("num_batches_tracked",)
LIST_LIMIT = 4  # keys named in a message before "... and N more"
SEED_NOTICE = ("no checkpoint: weights are seeded random (torch.manual_seed({seed})); "
               "accuracy figures mean nothing")


@dataclass
class LoadReport:
    """What a checkpoint load did.

    Attributes:
        path: the checkpoint file.
        digest: sha256 of the file.
        loaded: how many tensors went into the model.
        missing: model keys the checkpoint lacks (empty after a strict load).
        unexpected: checkpoint keys the model lacks (empty after a strict load).
        dropped: checkpoint keys removed on purpose before matching (``drop`` prefixes).
        notices: one-line remarks for the user (dropped keys, stripped prefixes, unwrapping).
    """

    path: str
    digest: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def name_keys(keys: Iterable[str], limit: int = LIST_LIMIT) -> str:
    """``a, b, c, d and 12 more``: a key list short enough for one line."""
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown} and {len(keys) - limit} more" if len(keys) > limit else shown


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """The state_dict inside a checkpoint file (unwrapped, ``module.`` stripped) and notices about it.

    Raises:
        ModelLoadError: missing or unreadable file, a pickle ``weights_only`` refuses, or no state_dict inside.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... with multi-line text
        text = str(exc)
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if unsupported or "Weights only load failed" in text:
            what = f" ({unsupported.group(1)})" if unsupported else ""
            raise ModelLoadError(f"checkpoint {path} holds Python objects that torch.load(weights_only=True) "
                                 f"refuses to unpickle{what}; re-save it as a plain state_dict") from None
        raise ModelLoadError(f"cannot read checkpoint {path}: {first_line(exc)}") from None

    notices: list[str] = []
    state = obj
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                state = obj[key]
                others = sorted(k for k in obj if k != key)
                if others:
                    notices.append(f"checkpoint: used its {key!r} entry (also holds {', '.join(map(str, others))})")
                break
    if not isinstance(state, Mapping) or not state:
        raise ModelLoadError(f"checkpoint {path} holds no state_dict (a dict of tensors, possibly under "
                             f"'state_dict' or 'model'); found {type(obj).__name__}")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(f"checkpoint {path}: entries that are not named tensors: {name_keys(bad)}")
    # NaN or inf weights export fine and then make every output NaN: refuse them by name
    broken = [k for k, v in state.items() if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]
    if broken:
        raise ModelLoadError(f"checkpoint {path}: {len(broken)} tensor{'s' if len(broken) != 1 else ''} hold NaN or "
                             f"infinite values: {name_keys(broken)}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notices.append("checkpoint: stripped the 'module.' prefix (DataParallel)")
    return dict(state), notices


def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, strict: bool = True,
                    drop: Iterable[str] = ()) -> LoadReport:
    """Load ``path`` into ``model`` with ``torch.load(weights_only=True)``.

    Args:
        model: the network, with upstream key names.
        path: the checkpoint file.
        strict: fail on any missing or unexpected key (``num_batches_tracked`` may be missing).
        drop: key prefixes removed before matching, each with a notice (ICNet: ``pretrained.fc.``,
            the ImageNet classifier that unpatched upstream checkpoints still hold).

    Returns:
        A LoadReport naming missing, unexpected and dropped keys.

    Raises:
        ModelLoadError: unreadable file, a key mismatch under ``strict``, or a shape mismatch (always).
    """
    state, notices = read_state_dict(path)
    drop = tuple(drop)
    dropped = [k for k in state if k.startswith(drop)] if drop else []
    for k in dropped:
        del state[k]
    if dropped:
        notices.append(f"checkpoint: dropped {len(dropped)} keys the network does not use: {name_keys(dropped)}")

    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {name_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {name_keys(unexpected)}")
        raise ModelLoadError(f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(parts)}")
    for k, v in state.items():
        if k in expected and tuple(v.shape) != tuple(expected[k].shape):
            raise ModelLoadError(f"checkpoint {path}: {k} has shape {list(v.shape)}, "
                                 f"the network expects {list(expected[k].shape)}")
    usable = {k: v for k, v in state.items() if k in expected}
    model.load_state_dict(usable, strict=False)
    if missing:
        notices.append(f"checkpoint: {len(missing)} keys missing, left at their initial values: {name_keys(missing)}")
    if unexpected:
        notices.append(f"checkpoint: {len(unexpected)} unexpected keys ignored: {name_keys(unexpected)}")
    return LoadReport(path=str(path), digest=file_digest(path), loaded=len(usable), missing=missing,
                      unexpected=unexpected, dropped=dropped, notices=notices)


def seed_init(model_factory: Any, seed: int) -> tuple[Any, str]:
    """Build a model under ``torch.manual_seed(seed)`` (same weights every time) and the notice to show."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_factory()
    return model, SEED_NOTICE.format(seed=seed)
