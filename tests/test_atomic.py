from __future__ import annotations

import errno
import os
import stat

import pytest

from surgery.atomic import write_text_atomic
from surgery.errors import ModelSaveError


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o664  # mkstemp alone gives 0600


def test_failures_are_one_line_and_leave_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / "dir").mkdir()
    with pytest.raises(ModelSaveError, match="is a folder"):
        write_text_atomic(tmp_path / "dir", "{}")
    real_replace = os.replace

    def full_disk(src, dst):  # the write "succeeded" into the page cache; the rename is what fails here
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ModelSaveError, match=r"cannot write .*a\.json: No space left on device") as info:
        write_text_atomic(tmp_path / "a.json", "{}")
    monkeypatch.setattr(os, "replace", real_replace)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]  # no temporary file left
