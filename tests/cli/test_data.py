"""surgery data make / prep: synthetic datasets in the real layouts, the guide's .bin + .info."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery.cli.main import main
from surgery.eval.datasets import open_dataset


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("kind, size", [("cityscapes", "16x32"), ("imagenet", "30x40"), ("dsb2018", "12x12")])
def test_make_writes_the_real_layout_and_says_it_is_not_accuracy(tmp_path, capsys, kind, size):
    assert surgery("data", "make", kind, tmp_path / kind, "--n", 2, "--size", size) == 0
    out = capsys.readouterr().out
    assert "they are not accuracy" in out and out.strip().splitlines()[-1].startswith(f"PASSED | 2 synthetic {kind}")
    ds = open_dataset(kind, tmp_path / kind)
    assert len(ds.samples) == 2 and ds.synthetic


def test_make_json_and_refusals(tmp_path, capsys):
    assert surgery("data", "make", "dsb2018", tmp_path / "d", "--n", 1, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["synthetic"] and doc["size"] == [96, 96] and doc["files"] == 4
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert surgery("data", "make", "dsb2018", tmp_path / "busy") == 2
    assert "not empty" in capsys.readouterr().err
    assert surgery("data", "make", "dsb2018", tmp_path / "e", "--size", "12") == 2
    assert "--size expects HxW" in capsys.readouterr().err


def test_prep_writes_one_bin_per_image_and_the_info(tmp_path, capsys):
    assert surgery("data", "make", "cityscapes", tmp_path / "cs", "--n", 3, "--size", "8x16") == 0
    rc = surgery("data", "prep", "icnet", "--data", tmp_path / "cs", "-o", tmp_path / "prep", "--info",
                 tmp_path / "icnet.info", "--limit", 2)
    out = capsys.readouterr().out
    assert rc == 0 and "PASSED | 2 .bin files (icnet guide preprocessing)" in out
    bins = sorted((tmp_path / "prep").glob("*.bin"))
    assert [b.name for b in bins] == [f"{s.id}.bin" for s in open_dataset("cityscapes", tmp_path / "cs").samples[:2]]
    assert bins[0].stat().st_size == 3 * 8 * 16 * 4
    assert np.fromfile(bins[0], "<f4").min() < 0  # ImageNet-normalised
    lines = (tmp_path / "icnet.info").read_text().splitlines()
    assert lines[0] == f"0 {bins[0]} 1024 2048"  # the guide's get_info.py arguments


def test_prep_errors(tmp_path, capsys):
    assert surgery("data", "prep", "yolo", "--data", tmp_path, "-o", tmp_path / "p") == 2
    assert "unknown recipe 'yolo'" in capsys.readouterr().err
    assert surgery("data", "prep", "unetpp", "--data", tmp_path, "-o", tmp_path / "p") == 2
    assert "not a DSB2018 layout" in capsys.readouterr().err
