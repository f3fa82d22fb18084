from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from surgery.cli.main import main
from surgery.records import PerfRecord, RunRecord
from surgery.targets.measure import finish_record


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(autouse=True)
def noise_cache(tmp_path, monkeypatch):
    """No calibration of the user's own cache leaks into these intervals."""
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(tmp_path / "cache"))


def perf(batch: int, ms: float, seed: int, *, target: str = "ort-cpu", error: str | None = None) -> PerfRecord:
    if error:
        return PerfRecord(target=target, batch=batch, error=error)
    lat = ms * (1 + 0.02 * np.random.default_rng(seed).standard_normal(300))
    return finish_record(PerfRecord(target=target, batch=batch, effective_batch=batch, latencies_ms=lat.tolist(),
                                    iterations=300))


def write_run(path: Path, records: list[PerfRecord], **extra) -> Path:
    RunRecord(command="bench", perf=records, target=records[0].target, extra=extra).save(path)
    return path


def runs(tmp_path: Path) -> tuple[Path, Path]:
    before = write_run(tmp_path / "before.json", [perf(1, 2.0, 1), perf(4, 4.0, 2), perf(8, 8.0, 3)])
    after = write_run(tmp_path / "after.json", [perf(1, 1.0, 4), perf(4, 4.0, 5),
                                                perf(8, 0, 0, error="MemoryError: out of memory")])
    return before, after


def test_diff_prints_the_table_and_a_summary(tmp_path, capsys):
    rc = surgery("diff", *runs(tmp_path))
    out = capsys.readouterr().out
    assert rc == 0
    assert "after vs before (95% CI)" in out and "before p50 ms" in out
    assert "[1] after, batch 8: MemoryError: out of memory" in out
    assert out.strip().splitlines()[-1] == "PASSED | after vs before (unpaired): 1 faster, 1 no significant change"
    assert "unpaired: measured apart" in out and "not calibrated" in out


def test_diff_markdown(tmp_path, capsys):
    assert surgery("diff", *runs(tmp_path), "--markdown") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| batch | before fps |") and lines[1].startswith("| ---: |")
    assert lines[2].split(" | ")[-1] == "faster |" and "failed [1]" in lines[4]
    assert "PASSED" not in "\n".join(lines)  # pasteable as is


def test_diff_csv(tmp_path, capsys):
    assert surgery("diff", *runs(tmp_path), "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["batch"] for r in rows] == ["1", "4", "8"]
    assert rows[0]["after_verdict"] == "faster" and float(rows[0]["after_speedup"]) > 1.8
    assert rows[1]["after_verdict"] == "no significant change"
    assert rows[2]["after_error"] == "MemoryError: out of memory" and rows[2]["after_verdict"] == ""


def test_diff_json(tmp_path, capsys):
    assert surgery("diff", *runs(tmp_path), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"] == ["before", "after"] and data["confidence"] == 0.95
    speedup = data["rows"][0]["cells"][1]["speedup"]
    assert speedup["verdict"] == "faster" and speedup["low"] < speedup["ratio"] < speedup["high"]
    assert data["min_effect"] == 0.01
    # a margin wider than the change holds the verdict back
    assert surgery("diff", *runs(tmp_path), "--json", "--min-effect", 0.99) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["min_effect"] == 0.99 and data["rows"][0]["cells"][1]["speedup"]["verdict"] == "no significant change"


def test_diff_three_records_and_bare_perf_lists(tmp_path, capsys):
    before, after = runs(tmp_path)
    bare = tmp_path / "slow.json"
    bare.write_text(json.dumps([perf(1, 3.0, 7).to_dict()]))
    assert surgery("diff", before, after, bare, "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["slow_verdict"] == "slower" and rows[1]["slow_error"] == "missing"


def test_diff_one_tune_record_compares_its_before_and_after(tmp_path, capsys):
    tuned = write_run(tmp_path / "m.tuned.json", [perf(1, 1.0, 1)], baseline_perf=[perf(1, 2.0, 2).to_dict()])
    assert surgery("diff", tuned, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"] == ["m.tuned:before", "m.tuned:after"]
    assert data["rows"][0]["cells"][1]["speedup"]["verdict"] == "faster"


def test_diff_rows_by_target_when_a_record_holds_several(tmp_path, capsys):
    a = write_run(tmp_path / "a.json", [perf(1, 2.0, 1), perf(1, 1.0, 2, target="ort-cuda")])
    b = write_run(tmp_path / "b.json", [perf(1, 2.0, 3)])
    assert surgery("diff", a, b, "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["target"], r["batch"]) for r in rows] == [("ort-cpu", "1"), ("ort-cuda", "1")]


def test_diff_bad_input_exits_2(tmp_path, capsys):
    before, _ = runs(tmp_path)
    assert surgery("diff", before) == 2
    assert "at least two records" in capsys.readouterr().err
    assert surgery("diff", before, tmp_path / "nope.json") == 2
    assert "record not found" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert surgery("diff", before, junk) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert surgery("diff", before, before, "--reference", "no-such-model") == 2
    assert "unknown zoo model" in capsys.readouterr().err


def test_help_texts_render(capsys):
    # a bare '%' in a verb's HELP breaks argparse's formatting of the top-level --help
    for argv in (["--help"], ["diff", "--help"], ["bench", "--help"], ["tune", "--help"]):
        try:
            surgery(*argv)
        except SystemExit as exc:
            assert exc.code == 0
    out = capsys.readouterr().out
    assert "95% CI" in out and "--min-time" in out and "--no-session-settings" in out


def test_a_reference_from_another_zoo_model_is_refused_unless_asked(tmp_path, capsys):
    before = tmp_path / "before.json"
    RunRecord(command="bench", perf=[perf(1, 2.0, 1)], target="ort-cpu",
              input_model={"path": "unetpp.onnx", "digest": "d", "zoo": "unetpp"}).save(before)
    after = write_run(tmp_path / "after.json", [perf(1, 1.0, 2)])
    assert surgery("diff", before, after, "--reference", "hrnet_w18") == 2
    err = capsys.readouterr().err
    assert "records are of zoo model unetpp" in err and "--reference-any" in err
    assert surgery("diff", before, after, "--reference", "hrnet_w18", "--reference-any", "--csv") == 0
    assert "ref_310_fps" in capsys.readouterr().out
    assert surgery("diff", before, after, "--markdown") == 0  # the records' own zoo model by default
    text = capsys.readouterr().out
    assert "310 fps/card (guide)" in text and "310P fps/device (guide)" in text and "ms/sample (guide)" in text
    assert "not measured here" in text and "per card of 4 devices" in text


def test_records_measured_together_are_diffed_paired(tmp_path, capsys):
    def member(ms: float, index: int) -> PerfRecord:
        r = perf(1, ms, index)
        r.rounds, r.pairing = [15] * 20, {"id": "g1/0", "index": index, "size": 2}
        return r

    a = write_run(tmp_path / "a.json", [member(2.0, 0)])
    b = write_run(tmp_path / "b.json", [member(1.9, 1)])
    assert surgery("diff", a, b) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "PASSED | b vs a (paired): 1 faster"
    assert "unpaired" not in out
