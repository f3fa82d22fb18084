"""The guides' files: ``.bin`` inputs, ``.info`` lists, and the NPU tools' output folders.

- ``.bin``: headerless little-endian C-order float32, one sample per file (``ndarray.tofile``),
  named ``<sample id>.bin``.
- ``.info`` (``get_info.py bin``): one line ``<index> <path> <width> <height>`` per file. The
  guides list files in ``glob()`` order; here they are sorted, so the file is the same on
  every machine. Width and height are copied as given (ICNet passes ``1024 2048``).
- ais_bench / ais_infer output folders: ``<input stem>_<i>.<bin|npy|txt>`` with ``i`` from 0,
  in ``<output>/<output_dirname>/`` (summary ``<output>/<output_dirname>_summary.json`` beside
  it) or ``<output>/<YYYY_MM_DD-hh_mm_ss>/`` (older ``sumary.json`` inside); the summary's
  ``filesinfo`` pairs inputs with outputs when present.
- the legacy benchmark: ``result/dumpOutput_device<D>/<input stem>_<k>.<bin|txt>`` with ``k`` from 1.

A BIN output holds no dtype or shape: the reader is given the layouts the output may have
(the model's own, then the task's usual ones) and takes the one whose byte size matches.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgery.atomic import write_bytes_atomic, write_text_atomic
from surgery.eval.errors import OutputsError

OUTPUT_FILE = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)\.(?P<ext>bin|npy|txt)$", re.IGNORECASE)
LAYOUTS = ("ais_bench", "benchmark")
FIRST_INDEX = {"ais_bench": 0, "benchmark": 1}
SEARCH_DEPTH = 3  # <output>/<dirname>/<device>/ is the deepest the tools nest


def write_bin(path: str | os.PathLike, array: np.ndarray) -> Path:
    """One sample as the guides' ``.bin``: raw little-endian C-order float32, written atomically."""
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return write_bytes_atomic(path, data)


def read_bin(path: str | os.PathLike, dtype: str | np.dtype, shape: Sequence[int] | None = None) -> np.ndarray:
    """A raw ``.bin`` as ``dtype`` (reshaped to ``shape`` when given)."""
    data = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<"))
    return data.reshape(tuple(shape)) if shape is not None else data


def info_lines(paths: Iterable[str | os.PathLike], width: int, height: int) -> list[str]:
    """``.info`` lines: sorted paths, indices from 0, the given width and height on every line."""
    return [f"{i} {p} {width} {height}" for i, p in enumerate(sorted(str(p) for p in paths))]


def write_info(path: str | os.PathLike, paths: Iterable[str | os.PathLike], width: int, height: int) -> Path:
    """Write a ``get_info.py bin``-style ``.info`` file (sorted, deterministic), atomically."""
    return write_text_atomic(path, "".join(line + "\n" for line in info_lines(paths, width, height)))


def read_info(path: str | os.PathLike) -> list[tuple[int, str, int, int]]:
    """The entries of an ``.info`` file: (index, path, width, height).

    Raises:
        OutputsError: a line that is not ``<index> <path> <width> <height>``.
    """
    out = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not (parts[0].isdigit() and parts[2].isdigit() and parts[3].isdigit()):
            raise OutputsError(f"{path}:{lineno}: expected '<index> <path> <width> <height>', got {line!r}")
        out.append((int(parts[0]), parts[1], int(parts[2]), int(parts[3])))
    return out


@dataclass(frozen=True)
class Layout:
    """A shape and dtype an output file may have (per sample, batch axis included where the tool keeps it)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        return f"{self.dtype} {'x'.join(map(str, self.shape))}"


@dataclass
class OutputFolder:
    """An ais_bench or benchmark output folder: each input stem's output files by output index.

    Attributes:
        folder: where the output files are.
        layout: ``ais_bench`` (indices from 0) or ``benchmark`` (from 1).
        files: input stem → {output index (0-based, tool offset removed): path}.
        fmt: ``bin``, ``npy`` or ``txt``.
        summary: the ais_bench summary JSON that paired the files, if one did.
        notices: how the folder was read.
    """

    folder: Path
    layout: str
    files: dict[str, dict[int, Path]]
    fmt: str
    summary: Path | None = None
    notices: list[str] = field(default_factory=list)

    def expected_name(self, stem: str, index: int = 0) -> str:
        return f"{stem}_{index + FIRST_INDEX[self.layout]}.{self.fmt}"

    def path(self, stem: str, index: int = 0) -> Path:
        """The file of output ``index`` for input ``stem``.

        Raises:
            OutputsError: no such file (naming the file expected).
        """
        found = self.files.get(stem, {}).get(index)
        if found is None:
            raise OutputsError(f"no output for {stem} in {self.folder} (expected {self.expected_name(stem, index)})")
        return found

    def read(self, stem: str, index: int, layouts: Sequence[Layout]) -> np.ndarray:
        """Output ``index`` of input ``stem``: NPY as saved, TXT and BIN as the first layout that fits.

        Raises:
            OutputsError: missing, unreadable, or of a size no layout has.
        """
        path = self.path(stem, index)
        return read_output(path, layouts)

    def describe(self) -> dict[str, str | int | None]:
        return {"outputs": str(self.folder), "layout": self.layout, "format": self.fmt, "files": len(self.files),
                "summary": str(self.summary) if self.summary else None}


def read_output(path: Path, layouts: Sequence[Layout]) -> np.ndarray:
    """One output file (bin, npy or txt) as an array, using ``layouts`` for what the file does not say.

    Raises:
        OutputsError: unreadable, or of a size none of ``layouts`` has.
    """
    ext = path.suffix.lower()
    try:
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".txt":
            values = np.array(path.read_text(encoding="utf-8").split(), dtype=np.float32)
            for layout in layouts:
                if int(np.prod(layout.shape)) == values.size:
                    return values.reshape(layout.shape)
            return values
        size = path.stat().st_size
    except (OSError, ValueError) as exc:
        raise OutputsError(f"cannot read output {path}: {exc}") from None
    for layout in layouts:
        if layout.nbytes == size:
            return read_bin(path, layout.dtype, layout.shape)
    expected = ", ".join(f"{lay.describe()} ({lay.nbytes:,} B)" for lay in layouts) or "none given"
    raise OutputsError(f"output {path} has {size:,} bytes, which fits none of the layouts expected: {expected}")


def _output_files(folder: Path) -> list[tuple[Path, re.Match[str]]]:
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for p in entries:
        if p.is_file():
            m = OUTPUT_FILE.match(p.name)
            if m:
                out.append((p, m))
    return out


def _candidates(root: Path) -> list[Path]:
    found: list[Path] = []
    frontier = [root]
    for _ in range(SEARCH_DEPTH + 1):
        nxt: list[Path] = []
        for folder in frontier:
            if _output_files(folder):
                found.append(folder)
            else:
                try:
                    nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
                except OSError:
                    continue
        if found:
            return found
        frontier = nxt
    return found


def _summary_for(folder: Path) -> Path | None:
    beside = folder.parent / f"{folder.name}_summary.json"
    for candidate in (beside, folder / "sumary.json", folder / "summary.json"):
        if candidate.is_file():
            return candidate
    return None


def _files_from_summary(summary: Path, folder: Path) -> dict[str, dict[int, Path]] | None:
    """Input stem → outputs from a summary's ``filesinfo``, located in ``folder`` by file name."""
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info = data.get("filesinfo") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not info:
        return None
    files: dict[str, dict[int, Path]] = {}
    for entry in info.values():
        if not isinstance(entry, dict):
            return None
        ins, outs = entry.get("infiles") or [], entry.get("outfiles") or []
        if not ins or not outs:
            continue
        stem = Path(str(ins[0])).stem
        located = {k: folder / Path(str(o)).name for k, o in enumerate(outs)}
        files[stem] = {k: p for k, p in located.items() if p.is_file()}
    return files or None


def open_outputs(path: str | os.PathLike, layout: str = "auto") -> OutputFolder:
    """Read an ais_bench / ais_infer / benchmark output folder (the folder itself, or one above it).

    Args:
        path: the output folder, or the ``--output`` folder holding one run's sub-folder.
        layout: ``ais_bench``, ``benchmark``, or ``auto`` (the summary JSON, a ``dumpOutput_device``
            name or a ``_0`` file mean ais_bench/benchmark; output indices from 1 mean benchmark).

    Raises:
        OutputsError: no output files, several runs under ``path``, or mixed formats.
    """
    root = Path(path)
    if not root.is_dir():
        raise OutputsError(f"outputs folder not found: {root}")
    if layout not in ("auto", *LAYOUTS):
        raise OutputsError(f"outputs layout must be auto, ais_bench or benchmark, got {layout!r}")
    found = _candidates(root)
    if not found:
        raise OutputsError(f"{root}: no output files (<input>_<i>.bin|npy|txt, as ais_bench or benchmark write them)")
    if len(found) > 1:
        names = ", ".join(str(f.relative_to(root)) for f in found[:4])
        raise OutputsError(f"{root} holds several runs' outputs ({names}); give one of them")
    folder = found[0]
    entries = _output_files(folder)
    formats = sorted({m.group("ext").lower() for _, m in entries})
    if len(formats) > 1:
        raise OutputsError(f"{folder} mixes output formats ({', '.join(formats)}); keep one run's files")
    indices = {int(m.group("index")) for _, m in entries}
    summary = _summary_for(folder)
    if layout == "auto":
        if folder.name.startswith("dumpOutput_device"):
            layout = "benchmark"
        elif summary is not None or 0 in indices:
            layout = "ais_bench"
        else:
            layout = "benchmark"
    notices: list[str] = []
    if folder != root:
        notices.append(f"outputs read from {folder}")
    files: dict[str, dict[int, Path]] | None = _files_from_summary(summary, folder) if summary is not None else None
    if files is None:
        base = FIRST_INDEX[layout]
        files = {}
        for p, m in entries:
            k = int(m.group("index")) - base
            if k < 0:
                raise OutputsError(f"{p}: output index {m.group('index')} in a {layout} folder (its indices start "
                                   f"at {base})")
            files.setdefault(m.group("stem"), {})[k] = p
    else:
        notices.append(f"inputs paired with outputs by {summary.name}")
    return OutputFolder(folder=folder, layout=layout, files=files, fmt=formats[0], summary=summary, notices=notices)
