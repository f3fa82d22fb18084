"""The legacy benchmark binary: argv in both modes, PureInfer and perf_vision parsers, a fake run."""

from __future__ import annotations

import pytest
from surgery.tools.ascend import benchmark
from surgery.tools.runner import ToolOutputError

from surgery.errors import UsageError


def test_pure_infer_argv_matches_the_guides():
    # ICNet guide: ./benchmark.x86_64 -round=20 -om_path=ICNet_bs1.om -device_id=0 -batch_size=1
    options = benchmark.BenchmarkOptions(om_path="ICNet_bs1.om", batch_size=1, round=20)
    assert options.argv() == ["./benchmark.x86_64", "-round=20", "-om_path=ICNet_bs1.om", "-device_id=0",
                              "-batch_size=1"]


def test_dataset_argv_matches_the_guides():
    options = benchmark.BenchmarkOptions(om_path="./ICNet_bs1.om", batch_size=1, model_type="vision",
                                         input_text_path="./icnet_pre_bin_1024_2048.info", input_width=1024,
                                         input_height=2048, output_binary=True, use_dvpp=False)
    guide = ("./benchmark.x86_64 -model_type=vision -device_id=0 -batch_size=1 -om_path=./ICNet_bs1.om "
             "-input_text_path=./icnet_pre_bin_1024_2048.info -input_width=1024 -input_height=2048 "
             "-output_binary=True -useDvpp=False")
    assert options.argv() == guide.split()
    assert options.perf_file() == "result/perf_vision_batchsize_1_device_0.txt"


def test_mode_must_be_one_of_two():
    with pytest.raises(UsageError, match="either"):
        benchmark.BenchmarkOptions(om_path="x.om", batch_size=1)
    with pytest.raises(UsageError, match="batch_size"):
        benchmark.BenchmarkOptions(om_path="x.om", batch_size=0, round=1)


def test_pure_infer_verbatim_cspresnext(data):
    path = data / "cspresnext_pure_infer_bs4.log"
    record = benchmark.parse_pure_infer(path.read_text(), source=str(path))
    assert record.batch == record.effective_batch == 4  # from PureInfer_perf_of_cspresnext_bs4
    assert record.throughput == 440.606
    assert record.stats["mean"] == pytest.approx(2.304 * 4)
    assert record.model == "cspresnext_bs4"


@pytest.mark.parametrize("line, rate, latency", [
    ("ave_throughputRate:20.6958samples/s, ave_latency:48.5792ms", 20.6958, 48.5792),  # ICNet bs1
    ("ave_throughputRate = 20.9682samples/s, ave_latency = 47.7961ms", 20.9682, 47.7961),  # ICNet AOE
    ("ave_throughputRate = 155.975samples/s, ave_latency = 6.42435ms", 155.975, 6.42435),  # HRNet bs1
])
def test_pure_infer_guide_variants(line, rate, latency):
    record = benchmark.parse_pure_infer(line, batch=1)
    assert (record.throughput, record.extra["ave_latency_per_sample_ms"]) == (rate, latency)


def test_pure_infer_errors():
    with pytest.raises(ToolOutputError, match="incomplete"):
        benchmark.parse_pure_infer("[INFO] ave_throughputRate: 440.606samples/s, ave_lat", batch=4)
    with pytest.raises(ToolOutputError, match="batch size"):
        benchmark.parse_pure_infer("ave_throughputRate: 1.5samples/s, ave_latency: 666ms")
    with pytest.raises(ToolOutputError, match="no 'ave_throughputRate"):
        benchmark.parse_pure_infer("Segmentation fault", batch=1)


@pytest.mark.parametrize("name, batch, device, interface", [
    ("perf_vision_batchsize_1_device_0.txt", 1, 0, 304.088),
    ("perf_vision_batchsize_16_device_1.txt", 16, 1, 421.719),
    ("perf_vision_batchsize_4_device_0.txt", 4, 0, 103.795),
])
def test_perf_vision(data, name, batch, device, interface):
    path = data / name
    record = benchmark.parse_perf_vision(path.read_text(), source=str(path))
    assert (record.batch, record.settings["device_id"], record.throughput) == (batch, device, interface)
    assert record.extra["throughput_per_310_card"] == pytest.approx(interface * 4)
    assert len(record.extra["stages"]) == 5


def test_perf_vision_truncated(data):
    lines = (data / "perf_vision_batchsize_1_device_0.txt").read_text().splitlines()
    with pytest.raises(ToolOutputError, match="of the 5 stage lines"):
        benchmark.parse_perf_vision("\n".join(lines[:4]), source="perf_vision_batchsize_1_device_0.txt")
    with pytest.raises(ToolOutputError, match="Interface throughputRate"):
        benchmark.parse_perf_vision("\n".join(lines[:3]), source="perf_vision_batchsize_1_device_0.txt")
    with pytest.raises(ToolOutputError, match="no figures"):
        benchmark.parse_perf_vision(lines[0] + "\n[infer] throughputRate", source="x_bs1.txt")


def test_run_benchmark_pure_infer_with_a_fake_binary(fake_bin, data, tmp_path):
    exe = fake_bin("benchmark.x86_64", f"print(open({str(data / 'cspresnext_pure_infer_bs4.log')!r}).read())")
    options = benchmark.BenchmarkOptions(om_path="cspresnext_bs4.om", batch_size=4, round=20, binary=str(exe))
    _run, record = benchmark.run_benchmark(options, cwd=tmp_path)
    assert record.throughput == 440.606 and record.iterations == 20
