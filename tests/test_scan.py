"""surgery.scan: finding models, choosing passes, rows for bad files and failing passes, processes that die."""

from __future__ import annotations

import onnx
import pytest
from graph_builders import two_heads
from scan_helpers import REGISTRY, DiesOnDie

from surgery.errors import UnknownNameError, UsageError
from surgery.scan import choose_passes, find_models, scan, scan_model


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "sub").mkdir()
    onnx.save(two_heads(), tmp_path / "a.onnx")
    onnx.save(two_heads(), tmp_path / "sub" / "b.onnx")
    (tmp_path / "sub" / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_find_models_walks_folders_once_each(folder):
    found = find_models([folder, folder / "a.onnx"])
    assert [p.relative_to(folder).as_posix() for p in found] == ["a.onnx", "sub/b.onnx", "sub/broken.onnx"]
    with pytest.raises(UsageError, match="no such file or folder"):
        find_models([folder / "missing.onnx"])
    (folder / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no \.onnx file under"):
        find_models([folder / "empty"])


def test_choose_passes_builds_defaults_and_says_what_is_not_run():
    passes, not_run = choose_passes(REGISTRY)
    assert list(passes) == ["count_relus", "broken"]
    assert not_run["needs_option"].startswith("needs options (pass needs_option needs option what=...")
    passes, not_run = choose_passes(REGISTRY, skip=["broken"])
    assert list(passes) == ["count_relus"] and not_run["broken"] == "skipped (--skip)"
    with pytest.raises(UnknownNameError, match="did you mean 'broken'"):
        choose_passes(REGISTRY, wanted=["brokn"])
    with pytest.raises(UsageError, match="cannot run in a scan"):
        choose_passes(REGISTRY, wanted=["needs_option"])


def test_rows_carry_counts_errors_and_unreadable_files(folder):
    passes, _ = choose_passes(REGISTRY)
    row = scan_model(folder / "a.onnx", passes)
    assert row.error is None and row.nodes == 5 and row.opset == 11
    relus, broken = row.passes
    assert relus.changed and relus.counts == {"Relu": 1} and relus.sites == 1
    assert broken.error == "ValueError: broken on purpose" and not broken.changed
    assert row.transdata["counts"]["unaligned_channels"] == 1  # the 4-channel Conv
    assert [p.name for p in row.would_change] == ["count_relus"]
    bad = scan_model(folder / "sub" / "broken.onnx", passes)
    assert bad.error.endswith("is not an ONNX model (protobuf decode failed: truncated or corrupt)")


def test_a_process_that_dies_costs_only_its_own_model(tmp_path):
    fine, doomed = two_heads(), two_heads()
    doomed.graph.name = "die"
    onnx.save(fine, tmp_path / "fine.onnx")
    onnx.save(doomed, tmp_path / "doomed.onnx")
    done = []
    rows = scan([tmp_path / "fine.onnx", tmp_path / "doomed.onnx"], {"dies": DiesOnDie()}, jobs=2,
                on_done=lambda r: done.append(r.path))
    assert rows[0].error is None and rows[0].passes[0].error is None
    assert rows[1].error.startswith("the scanning process died")
    assert sorted(done) == sorted(str(p) for p in (tmp_path / "fine.onnx", tmp_path / "doomed.onnx"))
