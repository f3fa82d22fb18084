"""Atomic file writes: write to a temporary file in the same folder, then rename.

Readers see the old file or the new one, never half of it, and a killed process leaves at
most a hidden ``.NAME.*.tmp`` beside it. ``mkstemp`` creates files with mode 0600; the
finished file gets the mode a plain ``open()`` would give it (0666 less the umask), as
every other tool's outputs do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from surgery.errors import ModelSaveError


def check_output_dir(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that its folder exists and it is not itself a folder.

    Raises:
        ModelSaveError: the folder is missing, or ``path`` is an existing folder.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ModelSaveError(f"output folder does not exist: {parent}")
    if path.is_dir():
        raise ModelSaveError(f"{path} is a folder: give a file path")
    return path


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, base: int = 0o666) -> None:
    """Give ``path`` the mode ``open()`` would have: ``base`` less the umask."""
    os.chmod(path, base & ~current_umask())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it.

    Raises:
        ModelSaveError: the folder is missing, not writable, full, or ``path`` is a folder.
    """
    path = check_output_dir(path)
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        apply_umask(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelSaveError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))
