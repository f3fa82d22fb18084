"""The guides' .bin / .info files and the NPU tools' output folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery.eval import formats
from surgery.eval.errors import OutputsError
from surgery.eval.formats import Layout, open_outputs


def test_bin_is_raw_little_endian_float32(tmp_path):
    x = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    path = formats.write_bin(tmp_path / "a.bin", x)
    assert path.read_bytes() == np.arange(6, dtype="<f4").tobytes() and path.stat().st_size == 24
    np.testing.assert_array_equal(formats.read_bin(path, "float32", (1, 2, 3)), x)


def test_info_is_sorted_and_keeps_the_guides_width_height(tmp_path):
    path = formats.write_info(tmp_path / "x.info", ["p/b.bin", "p/a.bin", "p/c.bin"], 1024, 2048)
    assert path.read_text() == "0 p/a.bin 1024 2048\n1 p/b.bin 1024 2048\n2 p/c.bin 1024 2048\n"
    assert formats.read_info(path)[1] == (1, "p/b.bin", 1024, 2048)
    (tmp_path / "bad.info").write_text("0 p/a.bin 1024\n")
    with pytest.raises(OutputsError, match=r"bad\.info:1: expected '<index> <path> <width> <height>'"):
        formats.read_info(tmp_path / "bad.info")


def write_outputs(folder, stems, first: int = 0, ext: str = "bin", outputs: int = 1):
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        for k in range(outputs):
            value = np.full((1, 3), i * 10 + k, np.float32)
            path = folder / f"{stem}_{first + k}.{ext}"
            if ext == "bin":
                value.tofile(path)
            elif ext == "npy":
                np.save(path, value)
            else:
                path.write_text(" ".join(map(str, value.ravel())) + "\n")
    return folder


LAYOUT = [Layout("float32", (1, 3))]


def test_ais_bench_folder_with_its_summary_beside(tmp_path):
    run = write_outputs(tmp_path / "result" / "result_bs1", ["img_a", "img_b"], outputs=2)
    (tmp_path / "result" / "result_bs1_summary.json").write_text(json.dumps({"NPU_compute_time": {}}))
    out = open_outputs(tmp_path / "result")  # the --output folder: its one run is found below it
    assert out.folder == run and out.layout == "ais_bench" and out.fmt == "bin"
    np.testing.assert_array_equal(out.read("img_b", 1, LAYOUT), [[11, 11, 11]])
    assert "outputs read from" in out.notices[0]


def test_old_ais_infer_summary_pairs_inputs_with_outputs(tmp_path):
    run = write_outputs(tmp_path / "2022_07_11-15_53_11", ["x1", "x2"])
    info = {"filesinfo": {"0": {"infiles": ["/npu/prep/x1.bin"], "outfiles": ["/npu/out/x1_0.bin"]},
                          "1": {"infiles": ["/npu/prep/x2.bin"], "outfiles": ["/npu/out/x2_0.bin"]}}}
    (run / "sumary.json").write_text(json.dumps(info))
    out = open_outputs(tmp_path)
    assert out.summary == run / "sumary.json" and set(out.files) == {"x1", "x2"}
    assert out.read("x2", 0, LAYOUT)[0, 0] == 10


def test_legacy_benchmark_counts_outputs_from_one(tmp_path):
    write_outputs(tmp_path / "result" / "dumpOutput_device0", ["frankfurt_000000_000294_leftImg8bit"], first=1)
    out = open_outputs(tmp_path / "result")
    assert out.layout == "benchmark"
    assert out.path("frankfurt_000000_000294_leftImg8bit", 0).name == "frankfurt_000000_000294_leftImg8bit_1.bin"
    with pytest.raises(OutputsError, match=r"no output for other .*expected other_1\.bin"):
        out.path("other")


@pytest.mark.parametrize("ext", ["npy", "txt"])
def test_npy_and_txt_outputs(tmp_path, ext):
    write_outputs(tmp_path / "o", ["ILSVRC2012_val_00000001"], ext=ext)
    out = open_outputs(tmp_path / "o")
    assert out.fmt == ext
    np.testing.assert_array_equal(out.read("ILSVRC2012_val_00000001", 0, LAYOUT), np.zeros((1, 3)))


def test_a_bin_of_no_expected_size_is_named(tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    np.zeros(5, np.float32).tofile(folder / "a_0.bin")
    with pytest.raises(OutputsError, match=r"a_0\.bin has 20 bytes, which fits none .*float32 1x3 \(12 B\)"):
        open_outputs(folder).read("a", 0, LAYOUT)


def test_layout_picks_the_dtype_by_size(tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    np.array([[3, 1]], np.int64).tofile(folder / "a_0.bin")
    layouts = [Layout("float32", (1, 3)), Layout("int64", (1, 2))]  # 12 B, 16 B
    got = open_outputs(folder).read("a", 0, layouts)
    assert got.dtype == np.int64 and got.tolist() == [[3, 1]]


def test_folder_errors(tmp_path):
    with pytest.raises(OutputsError, match="outputs folder not found"):
        open_outputs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputsError, match="no output files"):
        open_outputs(tmp_path / "empty")
    write_outputs(tmp_path / "two" / "run1", ["a"])
    write_outputs(tmp_path / "two" / "run2", ["a"])
    with pytest.raises(OutputsError, match=r"holds several runs' outputs \(run1, run2\); give one of them"):
        open_outputs(tmp_path / "two")
    write_outputs(tmp_path / "mixed", ["a"])
    write_outputs(tmp_path / "mixed", ["b"], ext="npy")
    with pytest.raises(OutputsError, match="mixes output formats"):
        open_outputs(tmp_path / "mixed")
