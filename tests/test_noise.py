from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from surgery import noise
from surgery.errors import UsageError
from surgery.records import host_info


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_an_uncalibrated_host_gets_the_stated_default():
    found = noise.lookup(host_info(), "ort-cpu")
    assert found == noise.DEFAULT and not found.calibrated and found.sigma == noise.DEFAULT_NOISE
    assert "not calibrated" in found.source and "--calibrate" in found.source
    assert noise.lookup(None, "ort-cpu") == noise.DEFAULT and noise.lookup({"cpu": "x"}, "ort-cpu") == noise.DEFAULT


def test_spread_of_separate_runs_and_its_upper_bound():
    medians = [10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8, 10.1]
    sample, upper = noise.between_run_sigma(medians)
    assert sample == pytest.approx(float(np.std(np.log(medians), ddof=1)))
    assert 1.3 * sample < upper < 1.8 * sample  # few runs: the stored figure is an upper 90 % bound
    assert noise.between_run_sigma([5.0, 5.0, 5.0])[1] == noise.MIN_NOISE
    with pytest.raises(UsageError, match="at least 3 runs"):
        noise.between_run_sigma([1.0, 2.0])
    with pytest.raises(UsageError, match="positive"):
        noise.between_run_sigma([1.0, 0.0, 2.0])


def test_a_calibration_is_stored_per_host_and_target_and_found_again(cache):
    medians = iter([10.0, 12.0, 8.0, 11.0])
    seen: list[int] = []
    result = noise.calibrate(lambda k: next(medians), runs=4, model="m", on_run=lambda k, m: seen.append(k))
    assert seen == [0, 1, 2, 3] and result.runs == 4 and result.sigma > result.sample_sigma
    path = noise.store(result, "ort-cpu")
    assert path == cache / "host-noise.json"
    found = noise.lookup(host_info(), "ort-cpu")
    assert found.calibrated and found.sigma == pytest.approx(result.sigma) and "4 runs" in found.source
    assert noise.lookup(host_info(), "ort-cuda") == noise.DEFAULT  # per target
    other = {**host_info(), "hostname": "elsewhere"}
    assert noise.lookup(other, "ort-cpu") == noise.DEFAULT  # per host
    noise.store(result, "ort-cuda")  # a second entry keeps the first
    data = json.loads(path.read_text())
    assert set(data[noise.host_key(host_info())]) == {"ort-cpu", "ort-cuda"}


def test_a_broken_calibration_file_is_one_line(cache):
    (cache / "host-noise.json").write_text("{oops")
    with pytest.raises(Exception, match="cannot read the host-noise calibrations"):
        noise.lookup(host_info(), "ort-cpu")


def test_the_calibration_model_is_valid_onnx():
    model = noise.conv_stack(layers=2, channels=4, size=8)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "Conv", "Relu"]
    assert noise.widest([noise.DEFAULT, noise.HostNoise(0.3, "x", True)]).sigma == 0.3
