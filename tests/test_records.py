"""Run and perf records: the JSON round trip, schema checks and one-line errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery.errors import RecordError
from surgery.records import SCHEMA, SCHEMA_VERSION, PerfRecord, RunRecord, host_info, library_versions, load_record


def test_round_trip_keeps_perf_rows_and_fields(tmp_path):
    record = RunRecord(command="bench", argv=["surgery", "bench", "m.onnx"], target="ort-cpu")
    record.perf = [PerfRecord(target="ort-cpu", batch=4, effective_batch=4, latencies_ms=[1.0, 2.0],
                              stats={"mean": 1.5}, throughput=2666.7, extra={"x": np.float32(1.5)})]
    path = record.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["schema_version"] == SCHEMA_VERSION
    assert data["finished"] and data["perf"][0]["extra"]["x"] == 1.5  # numpy scalars serialise as numbers
    back = load_record(path)
    assert back.command == "bench" and back.target == "ort-cpu"
    assert isinstance(back.perf[0], PerfRecord) and back.perf[0].latencies_ms == [1.0, 2.0]
    assert back.perf[0].ok and back.perf[0].effective_batch == 4


def test_a_failed_row_is_not_ok():
    assert not PerfRecord(target="ort-cpu", batch=8, error="out of memory").ok


@pytest.mark.parametrize("text, match", [
    ("{", "is not JSON"),
    ("[1, 2]", "is not a surgery record"),
    ('{"schema": "other"}', "not a surgery record"),
    (json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION + 1}), "newer than this surgery"),
    (json.dumps({"schema": SCHEMA, "schema_version": "1"}), "schema version"),
])
def test_bad_records_are_one_line_record_errors(tmp_path, text, match):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(RecordError, match=match) as info:
        load_record(path)
    assert "\n" not in str(info.value)


def test_missing_record(tmp_path):
    with pytest.raises(RecordError, match="record not found"):
        load_record(tmp_path / "none.json")


def test_perf_record_from_dict_ignores_unknown_keys_and_refuses_missing_ones():
    assert PerfRecord.from_dict({"target": "t", "batch": 1, "future_field": 3}).batch == 1
    with pytest.raises(RecordError, match="not a perf record"):
        PerfRecord.from_dict({"batch": 1})


def test_host_and_versions_name_the_machine_and_libraries():
    host = host_info()
    assert host["cores"] and host["python"]
    versions = library_versions()
    assert "onnx" in versions and "onnxruntime" in versions
    assert library_versions("no-such-distribution-xyz") == {}
