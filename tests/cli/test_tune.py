from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from graph_builders import padded_model
from surgery.tools import onnxruntime as ort_tool

from surgery.cli.main import main
from surgery.records import PerfRecord
from surgery.targets.measure import finish_record


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


def write_padded(path: Path, extra: int = 30) -> Path:
    """The padded model (simplify removes the padding) saved to ``path``."""
    model = padded_model(extra)
    onnx.save(model, path)
    return path


def fake_run_jobs(jobs, measure, on_progress=None):
    """A runner whose cost is a function of the model and settings: 0.1 ms a node, x2 with no optimization.

    Its jobs share rounds as the real one's do (one host factor per round), so tune decides on paired intervals.
    """
    rng = np.random.default_rng(0)
    hosts = 1 + 0.3 * rng.random(20)  # a neighbour that comes and goes, the same for every job of a round
    out = []
    for k, job in enumerate(jobs):
        model = onnx.ModelProto.FromString(job.source)
        ms = (1.0 + 0.1 * len(model.graph.node)) * (2.0 if job.options.graph_optimization == "disable" else 1.0)
        lat = ms * np.repeat(hosts, 10) * (1 + 0.01 * np.random.default_rng(k).standard_normal(200))
        batch = next(iter(job.feed.values())).shape[0]
        out.append(finish_record(PerfRecord(target=job.options.target, batch=batch, effective_batch=batch,
                                            latencies_ms=lat.tolist(), iterations=200, rounds=[10] * 20,
                                            pairing={"index": k, "size": len(jobs)} if len(jobs) > 1 else None,
                                            stop="precision", half_width=0.01, settings=job.options.settings())))
    return out


def test_tune_keeps_the_pass_that_helps_reverts_what_hurts_and_writes_model_and_record(tmp_path, capsys,
                                                                                     monkeypatch):
    monkeypatch.setattr(ort_tool, "run_jobs", fake_run_jobs)
    model = write_padded(tmp_path / "m.onnx")
    rc = surgery("tune", model, "--target", "ort-cpu", "--batch", "1,4", "--iterations", 20)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "kept pass simplify: faster: ×" in out
    assert "reverted graph_optimization=disable: slower: ×" in out
    assert "skipped pass eliminate_dead_code: nothing to change" in out
    assert "before vs after" in out and "after vs before (95% CI)" in out
    assert out.strip().splitlines()[-1].startswith("PASSED | kept pass simplify (1/")
    tuned = onnx.load(tmp_path / "m.tuned.onnx")
    assert [n.op_type for n in tuned.graph.node] == ["Relu", "Neg"]
    record = json.loads((tmp_path / "m.tuned.json").read_text())
    assert record["command"] == "tune" and record["status"] == "PASSED"
    assert record["extra"]["kept"] == ["pass simplify"]
    assert [p["name"] for p in record["passes"]] == ["simplify"]
    assert {t["decision"] for t in record["extra"]["trials"]} >= {"kept", "reverted", "skipped"}
    assert all(t["speedup"]["paired"] for t in record["extra"]["trials"] if t["speedup"])
    assert [p["batch"] for p in record["perf"]] == [1, 4] and len(record["extra"]["baseline_perf"]) == 2
    assert record["output_model"]["digest"] != record["input_model"]["digest"]
    assert record["tools"]["onnxruntime"]["after"]["graph_optimization"] == "all"
    # the record feeds diff directly: before vs after
    assert surgery("diff", tmp_path / "m.tuned.json", "--csv") == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and ",faster" in rows[1]


def test_tune_on_real_onnxruntime_runs_end_to_end(tmp_path, capsys):
    model = write_padded(tmp_path / "m.onnx", extra=3)
    out_path = tmp_path / "best.onnx"
    rc = surgery("tune", model, "--iterations", 10, "--warmup", 1, "-o", out_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and out_path.is_file() and (tmp_path / "best.json").is_file()
    trials = data["extra"]["trials"]
    assert {t["candidate"] for t in trials} >= {"pass simplify", "intra_op_threads=1", "graph_optimization=basic"}
    assert all(t["decision"] in ("kept", "reverted", "skipped", "failed") and t["reason"] for t in trials)
    measured = [t for t in trials if t["speedup"]]
    assert measured and all(t["speedup"]["low"] <= t["speedup"]["ratio"] <= t["speedup"]["high"] for t in measured)
    assert data["perf"][0]["iterations"] == 10 and data["perf"][0]["effective_batch"] == 1


def test_tune_usage_errors(tmp_path, capsys):
    model = write_padded(tmp_path / "m.onnx", extra=1)
    assert surgery("tune", model, "--no-verify") == 2
    assert "verified" in capsys.readouterr().err
    assert surgery("tune", model, "--pass", "resize_nearest") == 2
    assert "inexact" in capsys.readouterr().err
    assert surgery("tune", model, "-o", model) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert surgery("tune", model, "--no-passes", "--no-session-settings", "--iterations", 5) == 2
    assert "nothing to try" in capsys.readouterr().err
    assert surgery("tune", model, "--iterations", 5, "--precision", 0.01) == 2
    assert "does not combine with --precision" in capsys.readouterr().err
    assert surgery("tune", model, "--max-time", "nan") == 2
    assert "--max-time must be a finite number" in capsys.readouterr().err
    assert not (tmp_path / "m.tuned.onnx").exists()
