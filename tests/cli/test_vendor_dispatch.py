"""`surgery bench --target ais-bench|trtexec` and `surgery tune --aoe|--auto-tune` reach the vendor adapters."""

from __future__ import annotations

from surgery.cli.main import main


def test_bench_ais_bench_dry_run_plans_the_command(tmp_path, capsys):
    om = tmp_path / "m_bs4.om"
    assert main(["bench", str(om), "--target", "ais-bench", "--batch", "4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "python3 -m ais_bench --model" in out and "--batchsize 4" in out


def test_bench_ais_bench_without_tool_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    om = tmp_path / "m.om"
    om.write_bytes(b"om")
    rc = main(["bench", str(om), "--target", "ais-bench", "--batch", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "ais_bench" in err


def test_bench_trtexec_dry_run(model_path, capsys):
    assert main(["bench", str(model_path), "--target", "trtexec", "--batch", "2", "--fp16", "--dry-run"]) == 0
    assert f"trtexec --onnx={model_path} --fp16 --shapes=x:2x3x8x8" in capsys.readouterr().out


def test_tune_aoe_dry_run_on_a_file(model_path, tmp_path, capsys):
    rc = main(["tune", str(model_path), "--aoe", "--job-type", "1", "--batch", "1", "--soc", "Ascend310",
               "--dry-run", "--workdir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "aoe --framework=5" in out and "--job_type=1" in out
    assert "--soc_version=Ascend310" in out


def test_tune_dry_run_without_aoe_is_a_usage_error(model_path, capsys):
    assert main(["tune", str(model_path), "--dry-run"]) == 2
    assert "target ort-cpu runs in-process, there is nothing to plan" in capsys.readouterr().err
