"""Zoo models on vendor targets: the guide's graph by default, the batches it published, the export planned."""

from __future__ import annotations

import pytest

from surgery.cli.main import main


@pytest.mark.parametrize("argv, variant", [
    (["compile", "icnet"], "ppm=ascend"),
    (["tune", "icnet", "--aoe"], "ppm=ascend"),
    (["compile", "deeplabv3"], "head=argmax"),
    (["tune", "deeplabv3", "--aoe"], "head=argmax"),
])
def test_vendor_plans_build_the_guides_graph(argv, variant, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"--variant {variant} -o" in out  # the export the plan starts with
    assert f"built with {variant}: the graph its guide compiled" in out


def test_a_variant_given_wins_and_deeplab_is_planned_at_the_guides_batch(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "icnet", "--variant", "ppm=exact", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--variant ppm=exact -o" in out and "the graph its guide compiled" not in out
    assert main(["compile", "deeplabv3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "input:1,3,1024,2048" in out and "input:4,3,1024,2048" not in out  # batch 1 only, as its guide
    assert main(["compile", "deeplabv3", "--batch", "1,4", "--dry-run"]) == 0
    assert "batch 4: the guide published no figure for it" in capsys.readouterr().out
