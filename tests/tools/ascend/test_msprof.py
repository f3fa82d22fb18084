"""msprof: argv, op_summary and op_statistic CSVs into per-op-type counts and times."""

from __future__ import annotations

import pytest
from surgery.tools.ascend import msprof
from surgery.tools.runner import ToolOutputError


def test_argv():
    options = msprof.MsprofOptions(output="/home/HwHiAiUser/test", application="/home/HwHiAiUser/test/run",
                                   switches=("sys-hardware-mem", "sys-cpu-profiling"))
    assert options.argv() == ["msprof", "--output=/home/HwHiAiUser/test", "--application=/home/HwHiAiUser/test/run",
                              "--sys-hardware-mem=on", "--sys-cpu-profiling=on"]
    assert msprof.export_argvs("PROF_1", python="python3.7")[1] == ["python3.7", "msprof.py", "export", "summary",
                                                                     "-dir", "PROF_1"]


def test_op_statistic(data):
    profile = msprof.parse_op_statistic(data / "op_statistic_0_1.csv")
    assert profile.count("TransData") == 166 and profile.count("StridedSliceD") == 32
    assert profile.time_us("StridedSliceD") == pytest.approx(30518.91)
    assert profile.ops["TransData"].ratio_pct == pytest.approx(31.245)
    assert profile.count("Resize") == 0
    assert list(profile.to_dict()["ops"])[:3] == ["TransData", "Conv2D", "StridedSliceD"]  # costliest first
    assert set(profile.watched()) == {"TransData", "StridedSliceD", "Conv2D"}


def test_op_summary(data):
    profile = msprof.parse_op_summary(data / "op_summary_0_1.csv")
    transdata = profile.ops["TransData"]
    assert transdata.count == 4
    assert transdata.total_us == pytest.approx(23.44 + 18.73 + 11.95 + 23.1)
    assert transdata.formats == {"NCHW -> NC1HWC0": 3, "NC1HWC0 -> NCHW": 1}
    assert profile.count("StridedSliceD") == 1
    assert profile.iterations == 2
    assert profile.top[0] == {"op": "Conv_0", "type": "Conv2D", "duration_us": 41.02}


def test_bom_and_old_duration_column(tmp_path):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text("\ufeffOp Name,OP Type,Task Duration\nt0,TransData,5\nt1,TransData,7.5\n", encoding="utf-8")
    assert msprof.parse_op_summary(path).ops["TransData"].total_us == 12.5


@pytest.mark.parametrize("text, match", [
    ("Model Name,OP Type,Core Type,Count,Total Time(us)\nm,TransData,AI Core,16", "truncated"),
    ("Model Name,OP Type,Core Type,Count,Total Time(us)\nm,TransData,AI Core,sixteen,5", "not a number"),
    ("Model Name,OP Type,Core Type,Count,Total Time(us)\nm,TransData,AI Core,1.5,5", "whole number"),
    ("Model Name,Kernel,Count\nm,x,1", "no 'OP Type' column"),
    ("", "empty"),
])
def test_corrupt_op_statistic(tmp_path, text, match):
    path = tmp_path / "op_statistic_0_1.csv"
    path.write_text(text)
    with pytest.raises(ToolOutputError, match=match):
        msprof.parse_op_statistic(path)


def test_corrupt_op_summary(tmp_path):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text("Op Name,OP Type,Task Duration(us)\nt0,TransData,-3\n")
    with pytest.raises(ToolOutputError, match="non-negative"):
        msprof.parse_op_summary(path)


def test_sniff_and_compare(data):
    assert msprof.sniff((data / "op_summary_0_1.csv").read_text().splitlines()[0]) == "op_summary"
    assert msprof.sniff((data / "op_statistic_0_1.csv").read_text().splitlines()[0]) == "op_statistic"
    assert msprof.sniff("a,b,c") is None
    before = msprof.parse_op_statistic(data / "op_statistic_0_1.csv")
    after = msprof.parse_op_summary(data / "op_summary_0_1.csv")
    assert msprof.compare(before, after)["TransData"]["count"] == (166, 4)


def test_a_csv_no_tool_writes_is_an_output_error_not_a_crash(tmp_path):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text('"' + "x" * 200_000 + '"\n')
    assert msprof.sniff(path.read_text()) is None
    with pytest.raises(ToolOutputError, match="not a readable CSV"):
        msprof.parse_op_summary(path)
