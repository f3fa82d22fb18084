"""Every output a command will write, resolved and checked before any work starts.

A verb lists its inputs (the model, its external data, sample files) and each file or
folder it will write (model, external data, record, snapshots, compiled files) in an
:class:`Outputs`. Each is checked as it is added, so a bad path fails in one line, exit 2,
before a ten-minute search and not after it:

- two outputs that are the same file (``--record`` equal to ``-o``), or an output that is
  an input (``--record m.onnx``), are usage errors naming both flags;
- a folder where a file goes (or a file where a folder goes), a missing or unwritable
  folder (read-only filesystem, no permission), too little free space: usage errors naming
  the flag and the reason;
- files are compared by their real path (symlinks resolved) and by inode, so ``./m.onnx``,
  ``m.onnx`` and a hard link to it are the same file.

:func:`record_path` keeps records from being replaced silently: a default record name
that already holds another model's record moves to a free name, which is returned (the
verb prints it).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from surgery.errors import UsageError

# room every output needs beyond its own size (a record, a temporary file, the filesystem's own)
MIN_FREE_BYTES = 1 << 20


@dataclass(frozen=True)
class Planned:
    """One path a command reads or writes."""

    path: Path  # absolute, as given (symlinks not resolved: that is the path we write through)
    real: Path  # symlinks resolved: what identity is compared on
    what: str  # "the output model", "the run record"
    flag: str  # the flag that named it ("-o", "--record"), or "" for a default
    kind: str  # "file" | "folder"
    replaceable: bool = False  # an input the user allowed an output to replace (--overwrite)
    shown: str = ""  # the path as the user typed it (or as the default was built), for messages

    def named(self) -> str:
        """``--record m.json`` or ``the run record m.json``, for messages."""
        where = self.shown or str(self.path)
        return f"{self.flag} {where}" if self.flag else f"{self.what} {where}"


def _absolute(path: str | os.PathLike, flag: str) -> Path:
    text = os.fspath(path)
    if not text:
        raise UsageError(f"{flag or 'an output'} is an empty path")
    if "\x00" in text:
        raise UsageError(f"{flag or 'an output'} {text!r} contains a NUL byte")
    return Path(os.path.abspath(text))


def _same(a: Planned, b: Planned) -> bool:
    if a.real == b.real:
        return True
    try:
        return a.real.exists() and b.real.exists() and os.path.samefile(a.real, b.real)
    except OSError:
        return False


class Outputs:
    """The inputs and outputs of one command; adding an output checks it against all the others.

    Example:
        plan = Outputs()
        plan.input(model_path, "the input model")
        out = plan.model(args.output, flag="-o", size=source_bytes)
        record = plan.file(args.record or default, "the run record", flag="--record" if args.record else "")
    """

    def __init__(self) -> None:
        self.inputs: list[Planned] = []
        self.outputs: list[Planned] = []

    # -- inputs

    def input(self, path: str | os.PathLike, what: str, *, replaceable: bool = False) -> None:
        """An input that no output may overwrite (unless ``replaceable``: ``--overwrite``)."""
        p = Path(os.path.abspath(os.fspath(path)))
        self.inputs.append(Planned(p, Path(os.path.realpath(p)), what, "", "file", replaceable, os.fspath(path)))

    # -- outputs

    def file(self, path: str | os.PathLike, what: str, *, flag: str = "", size: int = 0,
             create_folder: bool = False) -> Path:
        """A file the command writes; returns its absolute path.

        Args:
            path: where it goes.
            what: what it is, for messages ("the run record").
            flag: the flag that named it, or "" for a default path.
            size: about how many bytes it will take (for the free-space check).
            create_folder: its folder may be missing and will be created (a workdir).

        Raises:
            UsageError: a collision with an input or another output, a folder at the path,
                a special file, a missing or unwritable folder, or too little free space.
        """
        p = _absolute(path, flag)
        planned = Planned(p, Path(os.path.realpath(p)), what, flag, "file", shown=os.fspath(path))
        if p.is_dir():
            raise UsageError(f"{planned.named()} is a folder; {what} is a file: give a file path")
        if p.exists() and not p.is_file():
            raise UsageError(f"{planned.named()} exists and is not a regular file; refusing to write {what} there")
        self._collisions(planned)
        self._writable(p.parent, planned, size, create_folder)
        self.outputs.append(planned)
        return p

    def model(self, path: str | os.PathLike, what: str = "the output model", *, flag: str = "-o",
              size: int = 0, create_folder: bool = False) -> Path:
        """An ONNX file and the external data file it may write beside it (``<name>.data``)."""
        from surgery.external_data import data_location

        p = self.file(path, what, flag=flag, size=size, create_folder=create_folder)
        self.file(p.parent / data_location(p), f"the external data of {what}", flag="", size=0,
                  create_folder=create_folder)
        return p

    def record(self, given: str | os.PathLike | None, default: str | os.PathLike, *, model: dict | None = None,
               overwrite: bool = False, create_folder: bool = False) -> tuple[Path, str | None]:
        """The run record: ``--record`` as given (it may replace only a surgery record), or the default name.

        A default name holding another model's record (or any other file) moves to a free
        name (see :func:`record_path`); the note says so, for the verb to print.

        Returns:
            (the record's absolute path, the note or None).
        """
        if given:
            p = self.file(given, "the run record", flag="--record", create_folder=create_folder)
            check_named_record(p)
            return p, None
        path, note = record_path(default, model=model, overwrite=overwrite)
        return self.file(path, "the run record", create_folder=create_folder), note

    def folder(self, path: str | os.PathLike, what: str, *, flag: str = "") -> Path:
        """A folder the command creates if needed and writes into.

        Raises:
            UsageError: a file at the path, an input or output file there, or a folder that
                cannot be created or written.
        """
        p = _absolute(path, flag)
        planned = Planned(p, Path(os.path.realpath(p)), what, flag, "folder", shown=os.fspath(path))
        if p.exists() and not p.is_dir():
            raise UsageError(f"{planned.named()} is a file; {what} is a folder: give a folder path")
        for other in [*self.inputs, *self.outputs]:
            if other.kind == "file" and _same(planned, other):
                raise UsageError(f"{planned.named()} is {other.what}; {what} must be a folder")
        if p.is_dir():
            self._writable(p, planned, 0, False)
        else:
            self._writable(p.parent, planned, 0, True)
        self.outputs.append(planned)
        return p

    # -- checks

    def _collisions(self, planned: Planned) -> None:
        for other in self.inputs:
            if _same(planned, other) and not other.replaceable:
                hint = " (--overwrite allows it)" if planned.flag == "-o" else ""
                raise UsageError(f"refusing to overwrite {other.what} ({planned.named()}) with {planned.what}{hint}")
        for other in self.outputs:
            if other.kind == "folder":
                continue
            if _same(planned, other):
                raise UsageError(f"{planned.named()} and {other.named()} are the same file: {planned.what} and "
                                 f"{other.what} would overwrite each other")

    def _writable(self, folder: Path, planned: Planned, size: int, create: bool) -> None:
        existing = folder
        while not existing.exists():
            if not create:
                raise UsageError(f"output folder does not exist: {folder} (for {planned.named()})")
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(f"cannot write {planned.named()}: {existing} is a file, not a folder")
        probe_folder(existing, planned.named())
        free = free_bytes(existing)
        needed = size + MIN_FREE_BYTES
        if free is not None and free < needed:
            raise UsageError(f"not enough free space for {planned.named()}: {_fmt(free)} free in {existing}, "
                             f"about {_fmt(needed)} needed")


def probe_folder(folder: Path, named: str) -> None:
    """Create and remove a temporary file in ``folder``: the only sure test that writing works.

    Raises:
        UsageError: read-only filesystem, no permission, full disk (with the system's reason).
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".surgery-probe.", dir=folder)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise UsageError(f"cannot write {named}: {folder} is not writable ({reason})") from None
    os.close(fd)
    os.unlink(tmp)


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged user may still write in ``folder``'s filesystem (None when unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _fmt(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


# ---------------------------------------------------------------------------
# records: never replaced silently


def record_input_model(path: Path) -> dict | None:
    """The ``input_model`` entry of the surgery record at ``path`` ({} when it has none); None for no record."""
    try:
        if path.stat().st_size > 64 * 2**20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("schema") != "surgery.record":
        return None
    model = data.get("input_model")
    return model if isinstance(model, dict) else {}


def same_model(recorded: dict, model: dict) -> bool:
    """Whether a record's ``input_model`` names the model at hand.

    Digests decide when both are known; else the zoo name; else the file's resolved path.
    """
    if recorded.get("digest") and model.get("digest"):
        return recorded["digest"] == model["digest"]
    if recorded.get("zoo") or model.get("zoo"):
        return recorded.get("zoo") == model.get("zoo")
    a, b = recorded.get("path"), model.get("path")
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b or "\x00" in a + b:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def record_path(default: str | os.PathLike, *, model: dict | None, overwrite: bool = False,
                max_tries: int = 1000) -> tuple[Path, str | None]:
    """Where a default-named record goes, and a note when it is not the default name.

    Args:
        default: the default record name (which says model and target).
        model: the model at hand as a record names it: any of ``digest``, ``zoo``, ``path``.
        overwrite: replace another model's record (never a file that is not a record).
        max_tries: how many numbered names to try.

    The default is used when it is free, or holds a surgery record of the same model (a
    rerun replaces it), or another model's record and ``overwrite`` is set. Otherwise
    (another model's record, or a file that is not a surgery record, which is never
    replaced) the first free ``NAME-2.json``, ``NAME-3.json``... is taken.

    Returns:
        (the path, a one-line note for the user, or None when the default name was used).
    """
    path = Path(default)
    if not path.exists() or path.is_dir():
        return path, None  # a folder there is refused by Outputs.file
    existing = record_input_model(path)
    if existing is not None and (overwrite or (model is not None and same_model(existing, model))):
        return path, None
    stem, suffix = (path.name[: -len(".json")], ".json") if path.name.endswith(".json") else (path.name, "")
    for k in range(2, max_tries + 2):
        candidate = path.with_name(f"{stem}-{k}{suffix}")
        if not candidate.exists():
            break
        found = record_input_model(candidate)
        if found is not None and model is not None and same_model(found, model):
            break
    else:
        raise UsageError(f"no free record name beside {path} (tried {max_tries}); give --record")
    if existing is None:
        return candidate, f"{path} is not a surgery record; writing {candidate.name} instead"
    return candidate, f"{path} holds another model's record; writing {candidate.name} instead (--overwrite replaces it)"


def check_named_record(path: str | os.PathLike, flag: str = "--record") -> None:
    """A record path the user named may replace a surgery record, never any other file.

    Raises:
        UsageError: the path holds a file that is not a surgery record.
    """
    p = Path(path)
    if p.is_file() and record_input_model(p) is None:
        raise UsageError(f"{flag} {p} exists and is not a surgery record; refusing to overwrite it")
