"""surgery import FILE...: tool outputs copied back from a host become a run record surgery diff can read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from surgery.cli.main import main
from surgery.records import load_record

DATA = Path(__file__).parents[1] / "tools" / "data"


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("result_bs16_summary.json", "trtexec_trt8_bs4.log", "perf_vision_batchsize_16_device_1.txt",
                 "op_statistic_0_1.csv", "aoe_result_opat_20220711155311_pid41873.json", "icnet_trt7_bs4.log",
                 "cspresnext_pure_infer_bs4.log", "ais_bench_bs16.log", "op_summary_0_1.csv", "aoe_icnet_job2.log"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def test_import_many_kinds_into_one_record(files, capsys):
    rc = surgery("import", "result_bs16_summary.json", "trtexec_trt8_bs4.log", "perf_vision_batchsize_16_device_1.txt",
                 "op_statistic_0_1.csv", "cspresnext_pure_infer_bs4.log", "ais_bench_bs16.log", "op_summary_0_1.csv",
                 "aoe_icnet_job2.log", "-o", "npu.json")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "PASSED | imported 8 files: 5 perf rows, 2 op profiles"
    record = load_record("npu.json")  # what surgery diff reads
    kinds = [i["kind"] for i in record.extra["imported"]]
    assert kinds == ["ais-bench-json", "trtexec-log", "benchmark-perf-vision", "msprof-op-statistic",
                     "benchmark-pure-infer", "ais-bench-log", "msprof-op-summary", "aoe-log"]
    by_target = {(p.target, p.batch): p for p in record.perf if not (p.source or "").endswith(".log")
                 or p.target != "ais-bench"}
    assert by_target[("ais-bench", 16)].latencies_ms[0] == 6.3741  # the JSON's per-iteration list
    assert by_target[("trtexec", 4)].stats["p99"] == 10.6445
    assert by_target[("ascend-benchmark", 16)].throughput == 421.719
    assert by_target[("ascend-benchmark", 4)].throughput == 440.606
    assert record.extra["op_profiles"][0]["ops"]["TransData"]["count"] == 166
    assert record.extra["op_profiles"][1]["watched"]["TransData"]["formats"] == {"NCHW -> NC1HWC0": 3,
                                                                              "NC1HWC0 -> NCHW": 1}
    assert record.extra["aoe"][0]["percent"] == 1.32
    assert all(len(i["sha256"]) == 64 for i in record.extra["imported"])


def test_batch_from_the_command_line(files, capsys):
    assert surgery("import", "icnet_trt7_bs4.log", "--batch", "4", "--model", "icnet", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    [perf] = record["perf"]
    assert perf["batch"] == 4 and perf["model"] == "icnet"
    assert perf["throughput"] == pytest.approx(289.6913, rel=1e-6)  # the guide's T4 bs4 column


def test_aoe_result_json_without_batch_gives_no_throughput(files, capsys):
    assert surgery("import", "aoe_result_opat_20220711155311_pid41873.json", "--json") == 0
    perf = json.loads(capsys.readouterr().out)["perf"]
    assert [p["settings"]["tuned"] for p in perf] == [False, True]
    assert all(p["throughput"] is None for p in perf)


def test_trt7_line_without_batch_is_an_error_not_a_guess(files, capsys):
    Path("icnet_trt7_bs4.log").rename("t4.log")  # no bs<N> in the name either
    rc = surgery("import", "t4.log")
    assert rc == 2
    err = capsys.readouterr().err
    assert "batch size" in err and "--batch" in err
    assert not Path("imported.json").exists()


@pytest.mark.parametrize("content, name, message", [
    ('{"NPU_compute_time": {"min": 1, "max": 2, "mea', "cut_summary.json", "does not parse"),
    ("[INFO] NPU_compute_time (ms): min = 0.52, max = 0.61, mean = 0.5", "cut.log", "lacks median"),
    ("[e2e] throughputRate: 203.598, latency: 245582\n", "perf_vision_batchsize_1_device_0.txt",
     "Interface throughputRate"),
    ("hello world\n", "notes.txt", "not a recognised tool output"),
    ('{"a": 1}', "other.json", "neither an ais_bench summary"),
])
def test_corrupt_or_unknown_files(tmp_path, monkeypatch, capsys, content, name, message):
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(content)
    assert surgery("import", name) == 2
    err = capsys.readouterr().err
    assert message in err and name in err
    assert not Path("imported.json").exists()


def test_a_record_is_not_reimported(files, capsys):
    assert surgery("import", "result_bs16_summary.json", "-o", "r.json") == 0
    capsys.readouterr()
    assert surgery("import", "r.json") == 2
    assert "already a surgery record" in capsys.readouterr().err


def test_kind_override_and_missing_file(files, capsys):
    assert surgery("import", "ais_bench_bs16.log", "--kind", "trtexec-log") == 2
    assert "GPU Compute" in capsys.readouterr().err
    assert surgery("import", "missing.json") == 2
    assert "file not found" in capsys.readouterr().err


def test_outputs_never_replace_an_input_or_a_file_that_is_not_a_record(files, capsys):
    summary = files / "result_bs16_summary.json"
    before = summary.read_bytes()
    assert surgery("import", summary, "-o", summary) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err and summary.read_bytes() == before
    (files / "notes.json").write_text("mine")
    assert surgery("import", summary, "-o", files / "notes.json") == 2
    assert "is not a surgery record" in capsys.readouterr().err
    assert (files / "notes.json").read_text() == "mine"


def test_the_default_record_name_moves_aside_instead_of_replacing(files, capsys):
    summary = files / "result_bs16_summary.json"
    assert surgery("import", summary) == 0
    first = (files / "imported.json").read_text()
    assert surgery("import", summary) == 0
    assert "writing imported-2.json instead" in capsys.readouterr().out
    assert (files / "imported.json").read_text() == first and (files / "imported-2.json").is_file()


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, "{" + '"a":{' * 50_000 + "}" * 50_001,
                                     "x" * 200_000])
def test_pathological_files_are_one_line_errors(tmp_path, capsys, content):
    path = tmp_path / "weird.json"
    path.write_text(content)
    assert surgery("import", path, "-o", tmp_path / "r.json") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "internal error" not in err
