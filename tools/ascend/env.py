"""Where the CANN tools live on an NPU host, and which CANN it is.

CANN installs under ``/usr/local/Ascend/ascend-toolkit/latest`` (root) or
``~/Ascend/ascend-toolkit/latest`` (user), and ``source .../set_env.sh`` puts its
``bin`` on PATH and sets ``ASCEND_TOOLKIT_HOME``. We look on PATH first, then under
those homes, so a user who forgot ``set_env.sh`` still gets the tool found or a
message saying exactly what to source.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from surgery.errors import ToolNotFoundError

DEFAULT_HOMES = ("/usr/local/Ascend/ascend-toolkit/latest", "~/Ascend/ascend-toolkit/latest")
SET_ENV_HINT = "source /usr/local/Ascend/ascend-toolkit/set_env.sh (or ~/Ascend/ascend-toolkit/set_env.sh)"
# where each tool sits below a toolkit home, newest layout first
TOOL_SUBDIRS: dict[str, tuple[str, ...]] = {
    "atc": ("bin", "atc/bin", "compiler/bin"),
    "aoe": ("bin", "tools/aoe/bin"),
    "msprof": ("bin", "tools/profiler/bin"),
}
VERSION_FILES = ("version.cfg", "ascend_toolkit_install.info", "compiler/version.info", "toolkit/version.info")
_VERSION_LINE = re.compile(r"(?i)^\s*(?:version|toolkit_installed_version|runtime_running_version|"
                           r"toolkit_running_version)\s*=\s*\[?\s*([0-9][0-9A-Za-z.]*)")


def toolkit_homes(env: Mapping[str, str] | None = None) -> list[Path]:
    """Candidate CANN toolkit homes: ``$ASCEND_TOOLKIT_HOME``, ``$ASCEND_HOME_PATH``, then the defaults."""
    env = os.environ if env is None else env
    homes = [env[k] for k in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH") if env.get(k)]
    homes += list(DEFAULT_HOMES)
    out: list[Path] = []
    for home in homes:
        path = Path(home).expanduser()
        if path not in out:
            out.append(path)
    return out


def find_tool(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The executable ``name`` on PATH or under a toolkit home, or None."""
    env = os.environ if env is None else env
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found:
        return Path(found)
    for home in toolkit_homes(env):
        for sub in TOOL_SUBDIRS.get(name, ("bin",)):
            candidate = home / sub / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def not_found_message(name: str, provide: str | None = None) -> str:
    """One line naming the missing tool and how to provide it."""
    how = provide or (f"on the NPU host run `{SET_ENV_HINT}` or set ASCEND_TOOLKIT_HOME to the CANN toolkit "
                      f"(…/ascend-toolkit/latest)")
    return f"{name} not found on PATH nor under a CANN toolkit home; {how}; or add --dry-run to print the commands"


def require_tool(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The path of tool ``name``.

    Raises:
        ToolNotFoundError: with a one-line hint naming set_env.sh and --dry-run.
    """
    found = find_tool(name, env)
    if found is None:
        raise ToolNotFoundError(not_found_message(name))
    return found


def python_module_available(module: str, python: str = "python3", env: Mapping[str, str] | None = None) -> bool:
    """Whether ``python -m module`` can import ``module`` (ais_bench lives in the host's python3, not ours)."""
    env = dict(os.environ if env is None else env)
    exe = shutil.which(python, path=env.get("PATH", os.defpath)) or (sys.executable if python == "python" else None)
    if exe is None:
        return False
    probe = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        done = subprocess.run([exe, "-c", probe], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cann_version(env: Mapping[str, str] | None = None) -> str | None:
    """The CANN version (``5.1.RC1``, ``7.0.0``) from the first toolkit home that records one, or None."""
    for home in toolkit_homes(env):
        for name in VERSION_FILES:
            version = read_version_file(home / name)
            if version:
                return version
    return None


def read_version_file(path: str | os.PathLike) -> str | None:
    """The version in a CANN ``version.cfg`` / ``*install.info`` / ``version.info`` file, or None."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        match = _VERSION_LINE.match(line)
        if match:
            return match.group(1).rstrip(".")
    return None


def version_key(version: str) -> tuple[int, ...]:
    """A sortable key: ``5.1.RC1`` → (5, 1, 0), ``6.0.1`` → (6, 0, 1). RC releases precede the patch releases."""
    parts: list[int] = []
    for part in version.split("."):
        if part.isdigit():
            parts.append(int(part))
        else:
            parts.append(0)  # RC1, alpha003: before the .1 patch release of the same minor
            break
    return tuple(parts)


def auto_tune_supported(version: str | None) -> bool | None:
    """Whether ATC's ``--auto_tune_mode`` exists: CANN before 6.0.1 only. None when the version is unknown."""
    if not version:
        return None
    return version_key(version) < (6, 0, 1)
