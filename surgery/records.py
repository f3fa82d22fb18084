"""Run records and perf records: versioned JSON that every producing command writes.

A *perf record* is one benchmark row: a model run on a target at a batch size, with
its latency samples and their statistics. A *run record* is what one command did:
command line, models in and out (by digest), passes and their results, verification
figures, perf records, tool and library versions, host and timestamps.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from surgery.atomic import write_text_atomic
from surgery.errors import RecordError

SCHEMA = "surgery.record"
SCHEMA_VERSION = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def host_info() -> dict[str, Any]:
    """CPU model, core count, OS and Python: enough to tell two machines apart in a diff."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (absent ones are left out)."""
    return dict(_library_versions(names))


@functools.cache
def _library_versions(names: tuple[str, ...]) -> dict[str, str]:  # metadata lookups parse files: tens of ms each run
    from importlib import metadata

    out: dict[str, str] = {}
    for name in names or ("onnx", "onnxruntime", "numpy", "onnxsim", "onnx-surgery", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class PerfRecord:
    """One benchmark row: a model on a target at one batch size.

    ``latencies_ms`` are per-iteration wall times of one inference call of the whole
    batch. ``throughput`` is ``effective_batch / mean latency`` in samples per second,
    where ``effective_batch`` is the batch the model really ran, never the one asked for.
    A failed row keeps ``error`` and no numbers. ``rounds`` (calls per round) and ``pairing``
    say how the samples were taken: records of one rotation share a pairing id and line up
    round by round, which is what lets ``surgery diff`` give them a paired interval.
    """

    target: str
    batch: int
    effective_batch: int | None = None
    model_digest: str | None = None
    model: str | None = None
    target_version: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    throughput: float | None = None
    warmup: int = 0
    iterations: int = 0
    error: str | None = None
    source: str | None = None  # where the numbers came from: "measured", or the file a parser read
    settings: dict[str, Any] = field(default_factory=dict)  # target/session settings used
    extra: dict[str, Any] = field(default_factory=dict)  # parser-specific figures (e.g. per-op times)
    # how the samples were taken (see surgery.targets.measure): calls per round, in order
    rounds: list[int] = field(default_factory=list)
    # models measured together: {"id": same for every record of one rotation, "index": position, "size": models}
    pairing: dict[str, Any] | None = None
    stop: str | None = None  # why measuring stopped: precision, max-time, iterations, max-iterations
    half_width: float | None = None  # the relative half-width the stop rule saw last

    @property
    def paired_with(self) -> str | None:
        """The id shared by the records measured in the same rotation, if any."""
        return str(self.pairing["id"]) if self.pairing and self.pairing.get("id") else None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerfRecord:
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise RecordError(f"not a perf record: {exc}") from None


@dataclass
class RunRecord:
    """What one command did. Serialised as JSON with a schema name and version."""

    command: str
    argv: list[str] = field(default_factory=list)
    status: str = "PASSED"  # PASSED | FAILED
    reason: str = ""
    input_model: dict[str, Any] | None = None  # {"path", "digest", "nodes", ...}
    output_model: dict[str, Any] | None = None
    passes: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    perf: list[PerfRecord] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    tools: dict[str, Any] = field(default_factory=dict)
    # models benched together: {"id", "models": [{"label", "digest", "record"}]}; empty when measured alone
    pairing: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    host: dict[str, Any] = field(default_factory=host_info)
    started: str = field(default_factory=now_iso)
    finished: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["perf"] = [p.to_dict() if isinstance(p, PerfRecord) else p for p in self.perf]
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        if self.finished is None:
            self.finished = now_iso()
        return write_text_atomic(path, self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        if data.get("schema") != SCHEMA:
            raise RecordError(f"not a surgery record (schema {data.get('schema')!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(f"record schema version {version!r} is newer than this surgery ({SCHEMA_VERSION})")
        known = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in known}
        fields["perf"] = [PerfRecord.from_dict(p) for p in data.get("perf", [])]
        return cls(**fields)


def load_record(path: str | os.PathLike) -> RunRecord:
    """Read a run record written by any surgery command."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"record not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"cannot read record {path}: {exc}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise RecordError(f"{path} is nested too deeply to be a surgery record") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not a surgery record")
    return RunRecord.from_dict(data)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")
