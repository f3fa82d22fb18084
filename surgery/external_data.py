"""External data: check every reference before reading a byte, load it, and save it without doubling memory.

A tensor's values may live in a file beside the model (``data_location = EXTERNAL`` with a
``location``/``offset``/``length`` table). Every tensor :func:`surgery.tensors.iter_tensors`
finds is checked, wherever it lives (initializers and sparse initializers at every graph
level, Constant and any other tensor attribute, every subgraph and function): the location
must be text without NUL bytes, relative, inside the model's folder once symlinks are
resolved, an existing regular file, and offset + length must lie within it. onnx's own
loader skips sparse tensors and checks less, so loading is done here, with the same walk.

Saving writes one data file (``<model>.data``) through a skeleton of the model: the
weights are written one tensor at a time and the in-memory model is left untouched, so
peak memory stays near the weights' size and the data file is never appended to twice.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnx

from surgery.atomic import apply_umask
from surgery.errors import ModelLoadError, ModelSaveError
from surgery.tensors import (
    declared_nbytes,
    has_inline_data,
    itemsize,
    iter_tensors,
    skeleton,
    tensor_data_bytes,
    tensor_meta,
)

ALIGN = 4096  # big tensors start on a page boundary (runtimes may mmap them); small ones are packed
ALIGN_FROM = 1 << 20
INLINE_LIMIT = 1024  # tensors smaller than this stay inside the model file (onnx's default threshold)
_CHUNK = 1 << 24


@dataclass(frozen=True)
class ExternalRef:
    """One checked external-data reference."""

    tensor: onnx.TensorProto
    where: str
    location: str
    path: Path
    offset: int
    length: int


def _text(value: object, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise ModelLoadError(f"external data of {where}: {what} is not valid UTF-8 text ({value!r:.80})")
    if "\x00" in value:
        raise ModelLoadError(f"external data of {where}: {what} contains a NUL byte ({value!r:.80})")
    return value


def _number(entries: dict[str, str], key: str, where: str) -> int | None:
    if key not in entries:
        return None
    text = entries[key].strip()
    if not text.isdigit() or len(text) > 19:
        raise ModelLoadError(f"external data of {where}: {key} {entries[key]!r:.40} is not a byte count")
    return int(text)


def external_refs(model: onnx.ModelProto, base: str | os.PathLike) -> list[ExternalRef]:
    """Every external reference of ``model``, checked against the folder ``base``.

    Raises:
        ModelLoadError: a location that is missing, not text, holds a NUL byte, is absolute,
            escapes ``base`` (also through a symlink), is not a regular file, or does not
            cover offset + length; a length that disagrees with the tensor's shape.
    """
    base_real = Path(os.path.realpath(base))
    refs: list[ExternalRef] = []
    sizes: dict[Path, int] = {}
    for site in iter_tensors(model):
        t, where = site.tensor, site.where
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries: dict[str, str] = {}
        for e in t.external_data:
            entries[_text(e.key, "a key", where)] = _text(e.value, f"the value of {e.key!r}", where)
        location = entries.get("location", "")
        if not location:
            raise ModelLoadError(f"{where} is marked as external data but has no location")
        if os.path.isabs(location) or location.startswith("~"):
            raise ModelLoadError(f"external data of {where} points outside the model's folder: {location!r}")
        target = Path(os.path.realpath(base_real / location))
        if base_real != target and base_real not in target.parents:
            raise ModelLoadError(f"external data of {where} points outside the model's folder: {location!r}")
        if target not in sizes:
            if not target.exists():
                raise ModelLoadError(f"external data file missing for {where}: {location}")
            if not target.is_file():
                raise ModelLoadError(f"external data of {where} is not a regular file: {location}")
            sizes[target] = target.stat().st_size
        offset = _number(entries, "offset", where) or 0
        length = _number(entries, "length", where)
        declared = declared_nbytes(t)
        if length is None:
            length = sizes[target] - offset if itemsize(t.data_type) == 0 else declared
        elif itemsize(t.data_type) and length != declared:
            raise ModelLoadError(f"external data of {where}: length {length} but its shape "
                                 f"{list(t.dims)} holds {declared} bytes")
        if offset + length > sizes[target]:
            raise ModelLoadError(f"external data of {where} ends at byte {offset + length:,} but {location} "
                                 f"has {sizes[target]:,} bytes (truncated?)")
        refs.append(ExternalRef(t, where, location, target, offset, length))
    return refs


def read_external(h: hashlib._Hash | None, refs: list[ExternalRef], *, load: bool = True) -> None:
    """Hash each referenced file whole (in location order) and read each reference into its tensor, in one pass.

    Each file is read once, front to back: the bytes between tensors only go to the hash, a
    tensor's bytes go to the hash and into its ``raw_data`` (one tensor in memory at a time
    beyond the model). References that overlap an earlier one are read again by seeking.

    Args:
        h: the model file's digest to fold the files into, or None.
        refs: the checked references (:func:`external_refs`).
        load: put the bytes into the tensors (False: only hash, as ``inspect`` needs).

    Raises:
        ModelLoadError: a file that cannot be read, or that ended early.
    """
    by_file: dict[Path, list[ExternalRef]] = {}
    for ref in refs:
        by_file.setdefault(ref.path, []).append(ref)
    for path in sorted(by_file, key=str):
        try:
            with open(path, "rb") as f:
                position = 0
                for ref in sorted(by_file[path], key=lambda r: r.offset):
                    if ref.offset < position:  # overlaps the one before: its bytes are hashed already
                        if load:
                            f.seek(ref.offset)
                            _assign(ref, _read_exact(f, ref))
                            f.seek(position)
                        continue
                    _skip(f, ref.offset - position, h)
                    if load:
                        data = _read_exact(f, ref)
                        if h is not None:
                            h.update(data)
                        _assign(ref, data)
                        del data
                    else:  # hashed in chunks: a summary never holds a tensor in memory
                        _skip(f, ref.length, h)
                    position = ref.offset + ref.length
                _skip(f, None, h)
        except OSError as exc:
            raise ModelLoadError(f"cannot read external data file {path}: {exc.strerror or exc}") from None


def _skip(f: BinaryIO, n: int | None, h: hashlib._Hash | None) -> None:
    """Read ``n`` bytes (None: to the end) into the hash only, in chunks."""
    while n is None or n > 0:
        chunk = f.read(_CHUNK if n is None else min(_CHUNK, n))
        if not chunk:
            return
        if h is not None:
            h.update(chunk)
        if n is not None:
            n -= len(chunk)


def _read_exact(f: BinaryIO, ref: ExternalRef) -> bytes:
    data = f.read(ref.length)
    if len(data) != ref.length:
        raise ModelLoadError(f"external data of {ref.where}: {ref.location} ended early")
    return data


def _assign(ref: ExternalRef, data: bytes) -> None:
    ref.tensor.raw_data = data
    ref.tensor.ClearField("data_location")  # as if saved inline: the same model hashes the same
    del ref.tensor.external_data[:]


def data_location(path: Path) -> str:
    """The data file a model saved at ``path`` uses: ``<name>.data`` beside it."""
    return f"{path.name}.data"


def save_external(model: onnx.ModelProto, path: Path) -> tuple[bytes, int]:
    """Write ``model`` to ``path`` with its tensors of 1 KiB and more in ``<name>.data`` beside it.

    Both files are written to temporary names in the destination folder and renamed into
    place, data first. ``model`` is not modified.

    Returns:
        (the model file's bytes, the data file's size; 0 when no tensor went out).

    Raises:
        ModelSaveError: the folder is not writable or the disk is full.
    """
    location = data_location(path)
    fd, tmp_data = tempfile.mkstemp(prefix=f".{location}.", suffix=".tmp", dir=path.parent)
    tmp_model = ""
    try:
        with os.fdopen(fd, "wb") as data_file:
            offset = 0

            def externalize(t: onnx.TensorProto) -> onnx.TensorProto | None:
                nonlocal offset
                if not has_inline_data(t) or t.data_type == onnx.TensorProto.STRING:
                    return None
                if declared_nbytes(t) < INLINE_LIMIT:
                    return None
                data = tensor_data_bytes(t)
                pad = (-offset) % ALIGN if len(data) >= ALIGN_FROM else 0
                if pad:
                    data_file.write(b"\0" * pad)
                    offset += pad
                data_file.write(data)
                out = tensor_meta(t)
                out.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(data)))):
                    entry = out.external_data.add()
                    entry.key, entry.value = key, value
                offset += len(data)
                return out

            light = skeleton(model, externalize)
        body = light.SerializeToString()
        fd2, tmp_model = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd2, "wb") as f:
            f.write(body)
        size = offset
        apply_umask(tmp_model)
        if size:
            apply_umask(tmp_data)
            os.replace(tmp_data, path.parent / location)
        os.replace(tmp_model, path)
    except OSError as exc:
        raise ModelSaveError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        for tmp in (tmp_data, tmp_model):
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
    return body, size
