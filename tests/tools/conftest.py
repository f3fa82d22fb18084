"""Fake vendor tools: small Python scripts written by the tests, put first on PATH.

Each fake prints a real tool's output (success, failure, partial) and exits with the
code the real tool would. No CANN, TensorRT or NPU is needed.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

PRELUDE = "#!/usr/bin/env python3\nimport json, os, pathlib, sys, time\nargv = sys.argv[1:]\n"
OPTS = "opts = dict(a[2:].split('=', 1) for a in argv if a.startswith('--') and '=' in a)\n"


@pytest.fixture
def data() -> Path:
    return DATA


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """``make(name, body)`` writes an executable Python script ``name`` first on PATH.

    ``body`` sees ``argv`` (the arguments) and ``opts`` (``--key=value`` pairs as a dict).
    CANN homes are pointed at an empty folder so no real toolkit is found.
    """
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "no-cann"))
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)

    def make(name: str, body: str) -> Path:
        path = bindir / name
        path.write_text(PRELUDE + OPTS + textwrap.dedent(body), encoding="utf-8")
        path.chmod(0o755)
        return path

    return make


@pytest.fixture
def fake_ais_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """``make(body)`` installs a fake ``ais_bench`` package (``python3 -m ais_bench``) via PYTHONPATH."""
    lib = tmp_path / "fakelib"
    pkg = lib / "ais_bench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{lib}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def make(body: str) -> Path:
        opts = ("opts = {}\nit = iter(argv)\nfor a in it:\n    if a.startswith('--'):\n"
                "        opts[a[2:]] = next(it, '')\n")
        path = pkg / "__main__.py"
        path.write_text(PRELUDE + opts + textwrap.dedent(body), encoding="utf-8")
        return path

    return make


FAKE_ATC = """
calls = pathlib.Path(os.environ['FAKE_CALLS'])
with calls.open('a') as f:
    f.write('atc ' + ' '.join(argv) + ' BANK=' + os.environ.get('TUNE_BANK_PATH', '') + '\\n')
print('ATC start working now, please wait for a moment.')
if opts['input_shape'].split(':')[1].startswith('8,'):
    print('ATC run failed, Please check the detail log, Try \\'atc --help\\' for more information')
    print('E19999: Inner Error! memory size exceeds the device limit')
    sys.exit(1)
if 'auto_tune_mode' in opts:
    bank = pathlib.Path(os.environ['TUNE_BANK_PATH'])
    bank.mkdir(parents=True, exist_ok=True)
    (bank / 'ga.json').write_text('{"tuned": true}')
pathlib.Path(opts['output']).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(opts['output'] + '.om').write_bytes(b'om')
print('ATC run success, welcome to the next use.')
"""

FAKE_AOE = """
calls = pathlib.Path(os.environ['FAKE_CALLS'])
with calls.open('a') as f:
    f.write('aoe ' + ' '.join(argv) + ' CWD=' + os.getcwd() + '\\n')
assert pathlib.Path(opts['model']).is_file(), 'model path relative to the AOE folder'
bank = pathlib.Path(os.environ['TUNE_BANK_PATH'])
(bank / 'op').mkdir(parents=True, exist_ok=True)
(bank / 'op' / ('job%s.json' % opts['job_type'])).write_text('{"tiling": 7}')
task = 'SGAT' if opts['job_type'] == '1' else 'OPAT'
pathlib.Path('aoe_result_%s_1_pid1.json' % task.lower()).write_text(json.dumps(
    {task: {"model_baseline_performance(ms)": 2.0, "model_result_performance(ms)": 1.6}}))
print('%s process finished. Performance improved by 25.00%%' % task)
print('Aoe process finished')
"""

FAKE_AIS = """
batch = int(opts['batchsize'])
mean = 1.6 if '/tuned/' in opts['model'] else 2.0
out = pathlib.Path(opts['output'])
out.mkdir(parents=True, exist_ok=True)
summary = {"args": {"batchsize": batch, "loop": int(opts['loop'])},
           "NPU_compute_time": {"min": mean - 0.1, "max": mean + 0.1, "mean": mean, "median": mean,
                                "percentile(99%)": mean + 0.05, "count": 3},
           "npu_compute_time_list": [mean - 0.1, mean, mean + 0.1], "throughput": 1000 * batch / mean}
(out / (opts['output_dirname'] + '_summary.json')).write_text(json.dumps(summary))
print('[INFO] throughput 1000*batchsize.mean(B)/NPU_compute_time.mean(T): %s' % (1000 * batch / mean))
"""


@pytest.fixture
def fake_ascend(fake_bin, fake_ais_bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake atc (fails on batch 8 with E19999), aoe and ais_bench (tuned oms 1.25x faster); returns the call log."""
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    fake_bin("atc", FAKE_ATC)
    fake_bin("aoe", FAKE_AOE)
    fake_ais_bench(FAKE_AIS)
    return calls


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with python3 but no vendor tools, and no CANN home."""
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "no-cann"))
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
