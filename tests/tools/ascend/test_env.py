"""Finding CANN tools and the CANN version: PATH, ASCEND_TOOLKIT_HOME, version files."""

from __future__ import annotations

import pytest
from surgery.tools.ascend import env

from surgery.errors import ToolNotFoundError


def _exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_path_first_then_toolkit_home(tmp_path):
    home = tmp_path / "ascend-toolkit" / "latest"
    in_home = _exe(home / "bin" / "atc")
    on_path = _exe(tmp_path / "pathbin" / "atc")
    environ = {"PATH": str(tmp_path / "pathbin"), "ASCEND_TOOLKIT_HOME": str(home)}
    assert env.find_tool("atc", environ) == on_path
    assert env.find_tool("atc", {"PATH": "", "ASCEND_TOOLKIT_HOME": str(home)}) == in_home


def test_older_layouts_under_the_home(tmp_path):
    home = tmp_path / "latest"
    msprof = _exe(home / "tools" / "profiler" / "bin" / "msprof")
    atc = _exe(home / "atc" / "bin" / "atc")
    environ = {"PATH": "", "ASCEND_HOME_PATH": str(home)}
    assert env.find_tool("msprof", environ) == msprof
    assert env.find_tool("atc", environ) == atc


def test_not_found_message_says_how(tmp_path):
    with pytest.raises(ToolNotFoundError) as info:
        env.require_tool("aoe", {"PATH": "", "ASCEND_TOOLKIT_HOME": str(tmp_path)})
    message = str(info.value)
    assert message.startswith("aoe not found") and "set_env.sh" in message and "--dry-run" in message
    assert "\n" not in message


@pytest.mark.parametrize("name, text, version", [
    ("version.cfg", "# version\ntoolkit_installed_version=[6.3.RC1.alpha001:6.3.RC1.alpha001]\n", "6.3.RC1.alpha001"),
    ("ascend_toolkit_install.info", "package_name=Ascend-cann-toolkit\nversion=5.1.RC1\narch=x86_64\n", "5.1.RC1"),
    ("compiler/version.info", "Version=7.0.0\n", "7.0.0"),
])
def test_cann_version_files(tmp_path, name, text, version):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert env.cann_version({"ASCEND_TOOLKIT_HOME": str(tmp_path)}) == version


def test_no_version_anywhere(tmp_path):
    assert env.read_version_file(tmp_path / "version.cfg") is None


@pytest.mark.parametrize("version, supported", [("5.1.RC1", True), ("5.0.2.alpha003", True), ("6.0.RC1", True),
                                                ("6.0.1", False), ("7.0.0", False), (None, None)])
def test_auto_tune_supported(version, supported):
    assert env.auto_tune_supported(version) is supported


def test_python_module_probe(fake_ais_bench):
    fake_ais_bench("print('hi')")
    assert env.python_module_available("ais_bench")
    assert not env.python_module_available("surely_not_a_module_xyz")
