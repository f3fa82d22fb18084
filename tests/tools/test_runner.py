"""The shared process runner: exit codes, success lines, E-codes, log files, timeouts."""

from __future__ import annotations

import os
import re
import time

import pytest
from surgery.tools.runner import command_line, error_code, run_tool

from surgery.errors import ToolError, ToolNotFoundError


def test_success_needs_exit_zero_and_the_success_line(fake_bin, data, tmp_path):
    fake_bin("atc", f"print(open({str(data / 'atc_success.log')!r}).read(), end='')")
    log = tmp_path / "logs" / "atc.log"
    run = run_tool(["atc", "--mode=0"], log_path=log, success_line="ATC run success")
    assert run.returncode == 0
    assert "ATC run success" in run.output
    assert log.read_text() == (data / "atc_success.log").read_text()
    assert run.tail(1).startswith("W11001")


def test_failure_carries_exit_code_e_code_and_log_tail(fake_bin, data, tmp_path):
    fake_bin("atc", f"print(open({str(data / 'atc_failure_out_nodes.log')!r}).read(), end=''); sys.exit(255)")
    with pytest.raises(ToolError) as info:
        run_tool(["atc", "--out_nodes=Resize_317:0"], log_path=tmp_path / "a.log", success_line="ATC run success")
    err = info.value
    assert err.returncode == 255
    assert err.code == "E10016"
    assert err.argv == ["atc", "--out_nodes=Resize_317:0"]
    assert "ATC run failed" in err.log_tail
    assert "E10016" in str(err) and "a.log" in str(err)
    assert err.exit_code == 1


def test_ez_codes_are_extracted(data):
    assert error_code((data / "atc_failure_no_kernel.log").read_text()) == "EZ3003"
    assert error_code("W11001: a warning only") is None


def test_exit_zero_without_the_success_line_is_a_failure(fake_bin):
    # a crash after partial output: the start line, then nothing
    fake_bin("atc", "print('ATC start working now, please wait for a moment.')")
    with pytest.raises(ToolError, match="without its success line"):
        run_tool(["atc"], success_line="ATC run success")


def test_exit_zero_with_a_failure_line_is_a_failure(fake_bin, data):
    fake_bin("atc", f"print(open({str(data / 'atc_failure_no_kernel.log')!r}).read())")
    with pytest.raises(ToolError) as info:
        run_tool(["atc"], success_line="ATC run success", failure_line="ATC run failed")
    assert info.value.code == "EZ3003"


def test_regex_success_line(fake_bin):
    fake_bin("trtexec", "print('&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec')")
    run_tool(["trtexec"], success_line=re.compile(r"^&&&& PASSED", re.MULTILINE))


def test_env_additions_reach_the_tool_and_no_shell_is_used(fake_bin):
    fake_bin("aoe", "print(os.environ['TUNE_BANK_PATH']); print(argv[0])")
    run = run_tool(["aoe", "$HOME;echo pwned"], env={"TUNE_BANK_PATH": "/banks/x"})
    assert run.output.splitlines() == ["/banks/x", "$HOME;echo pwned"]


def test_missing_executable_is_tool_not_found(no_tools):
    with pytest.raises(ToolNotFoundError) as info:
        run_tool(["surely-not-a-tool-xyz"])
    assert info.value.exit_code == 2


def test_hang_is_killed_with_its_children(fake_bin, tmp_path):
    pidfile = tmp_path / "child.pid"
    fake_bin("aoe", f"""
        import subprocess
        child = subprocess.Popen(['sleep', '30'])
        open({str(pidfile)!r}, 'w').write(str(child.pid))
        print('tuning...', flush=True)
        time.sleep(30)
    """)
    started = time.monotonic()
    with pytest.raises(ToolError, match="timed out after 1 s") as info:
        run_tool(["aoe"], timeout=1, log_path=tmp_path / "aoe.log")
    assert time.monotonic() - started < 8
    assert "tuning..." in info.value.log_tail
    assert info.value.returncode is None
    child = int(pidfile.read_text())
    for _ in range(50):  # the grandchild died with the group (reaped by init shortly after)
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the tool's child process survived the timeout")


def test_command_line_quotes_for_the_shell():
    line = command_line(["atc", "--out_nodes=a:0;b:0"], {"TUNE_BANK_PATH": "my bank"})
    assert line == "TUNE_BANK_PATH='my bank' atc '--out_nodes=a:0;b:0'"


def test_tool_json_nested_too_deeply_is_an_output_error(tmp_path):
    from surgery.tools.runner import ToolOutputError, read_output_json

    path = tmp_path / "summary.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ToolOutputError, match="nested too deeply"):
        read_output_json(path, "the summary")
