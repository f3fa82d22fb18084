"""The host's between-run noise: how far one run's median moves between separate processes.

Two records measured apart (two ``surgery bench`` runs, minutes or days apart) share
nothing that cancels: session memory layout, thread placement, the neighbours and the
clock all change between processes. ``surgery diff`` therefore widens an *unpaired*
interval by this noise (see :func:`surgery.stats.speedup_ci`, ``run_noise``). It is a
property of the host (and of the target), so it is measured once per host:
``surgery bench --calibrate`` runs the same model in several separate processes, and the
spread of their log medians, taken at its upper 90 % confidence bound (a handful of runs
underestimates a spread more often than not), is stored per host in
``$SURGERY_CACHE_DIR/host-noise.json`` (default ``~/.cache/surgery/host-noise.json``).

Without a calibration the stated conservative default :data:`DEFAULT_NOISE` applies: on a
shared 2-core host the medians of separate runs of one model differ by tens of percent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from surgery.atomic import write_text_atomic
from surgery.errors import RecordError, UsageError
from surgery.records import host_info, now_iso

DEFAULT_NOISE = 0.10  # relative std of one run's median when the host is not calibrated (conservative)
MIN_NOISE = 0.002  # no host repeats a run better than this; a calibration never goes below it
CACHE_ENV = "SURGERY_CACHE_DIR"
NOISE_FILE = "host-noise.json"
DEFAULT_RUNS = 8
UPPER_BOUND_LEVEL = 0.90  # one-sided confidence of the stored upper bound on the spread


@dataclass(frozen=True)
class HostNoise:
    """Between-run noise of one host and target, and where the figure comes from.

    Attributes:
        sigma: the relative standard deviation of one run's median across separate processes.
        source: for the reader, e.g. ``calibrated 2026-01-02 (8 runs)`` or ``default``.
        calibrated: False for the stated default.
    """

    sigma: float
    source: str
    calibrated: bool = False

    def describe(self) -> str:
        return f"±{self.sigma * 100:.1f}% between runs ({self.source})"


DEFAULT = HostNoise(sigma=DEFAULT_NOISE, source="default: host not calibrated (surgery bench --calibrate)")


def cache_path() -> Path:
    """Where calibrations are kept: ``$SURGERY_CACHE_DIR/host-noise.json`` or ``~/.cache/surgery/host-noise.json``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path("~/.cache/surgery").expanduser()) / NOISE_FILE


def host_key(host: Mapping[str, Any] | None) -> str | None:
    """Identity of a host for calibrations: hostname, CPU model and core count (None when unknown)."""
    if not host or not host.get("hostname"):
        return None
    return f"{host.get('hostname')}|{host.get('cpu', '')}|{host.get('cores', '')}"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"cannot read the host-noise calibrations {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def lookup(host: Mapping[str, Any] | None, target: str | None, path: Path | None = None) -> HostNoise:
    """The calibrated noise of ``host`` on ``target``, else :data:`DEFAULT`."""
    key = host_key(host)
    if key is None or not target:
        return DEFAULT
    entry = _read(path or cache_path()).get(key, {}).get(target)
    if not isinstance(entry, dict) or not isinstance(entry.get("sigma"), (int, float)):
        return DEFAULT
    sigma = float(entry["sigma"])
    if not math.isfinite(sigma) or sigma <= 0:
        return DEFAULT
    when = str(entry.get("measured", ""))[:10]
    return HostNoise(sigma=sigma, source=f"calibrated {when} ({entry.get('runs', '?')} runs)", calibrated=True)


def widest(levels: Sequence[HostNoise]) -> HostNoise:
    """The largest of several hosts' noise (two records from two hosts: the noisier one rules)."""
    return max(levels, key=lambda n: n.sigma) if levels else DEFAULT


def store(entry: Calibration, target: str, host: Mapping[str, Any] | None = None, path: Path | None = None) -> Path:
    """Save a calibration for this host (or ``host``) and ``target``, atomically, keeping the others."""
    host = dict(host or host_info())
    key = host_key(host)
    if key is None:
        raise UsageError("cannot tell this host apart (no hostname): the calibration would not be found again")
    path = path or cache_path()
    data = _read(path)
    data.setdefault(key, {})[target] = {**entry.to_dict(), "host": host}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class Calibration:
    """The medians of separate runs of one model and the noise they imply."""

    medians_ms: tuple[float, ...]
    sample_sigma: float
    sigma: float  # the upper confidence bound that is stored and used
    model: str
    measured: str

    @property
    def runs(self) -> int:
        return len(self.medians_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "sample_sigma": self.sample_sigma, "runs": self.runs,
                "medians_ms": list(self.medians_ms), "model": self.model, "measured": self.measured,
                "level": UPPER_BOUND_LEVEL}


def _chi2_quantile(p: float, dof: int) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (within 1 % from 2 degrees of freedom)."""
    z = NormalDist().inv_cdf(p)
    c = 2 / (9 * dof)
    return dof * max(1e-9, 1 - c + z * math.sqrt(c)) ** 3


def between_run_sigma(medians_ms: Sequence[float]) -> tuple[float, float]:
    """(sample std, its upper 90 % bound) of the log medians of separate runs.

    Raises:
        UsageError: fewer than 3 runs, or a median that is not a positive number.
    """
    m = np.asarray(medians_ms, dtype=np.float64)
    if m.size < 3:
        raise UsageError(f"a calibration needs at least 3 runs, got {m.size}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise UsageError("a calibration run gave no positive median latency")
    s = float(np.std(np.log(m), ddof=1))
    dof = m.size - 1
    upper = s * math.sqrt(dof / _chi2_quantile(1 - UPPER_BOUND_LEVEL, dof))
    return s, max(upper, MIN_NOISE)


def calibrate(run_once: Callable[[int], float], *, runs: int = DEFAULT_RUNS, model: str = "",
              on_run: Callable[[int, float], None] | None = None) -> Calibration:
    """Run the model ``runs`` times in separate processes (``run_once(index)`` → its median in ms) and fit the noise.

    Raises:
        UsageError: fewer than 3 runs.
    """
    if runs < 3:
        raise UsageError(f"--runs must be >= 3 for a calibration, got {runs}")
    medians = []
    for k in range(runs):
        median = run_once(k)
        medians.append(median)
        if on_run is not None:
            on_run(k, median)
    sample, upper = between_run_sigma(medians)
    return Calibration(medians_ms=tuple(medians), sample_sigma=sample, sigma=upper, model=model, measured=now_iso())


def conv_stack(layers: int = 8, channels: int = 32, size: int = 32) -> onnx.ModelProto:
    """A seeded stack of 3x3 convolutions + Relu, batch dynamic: the default calibration workload (about 1 ms a call).

    Dense convolutions exercise what most zoo models spend their time in (the thread pool,
    the memory bandwidth), so its run-to-run spread stands for theirs.
    """
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((channels, 3 if i == 0 else channels, 3, 3)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = f"r{i}"
    graph = helper.make_graph(
        nodes, "calibration", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", channels, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model
