"""The errors of evaluation: a dataset or an outputs folder that cannot be read as the guide lays it out."""

from __future__ import annotations

from surgery.errors import UsageError


class DatasetError(UsageError):
    """A dataset folder in the wrong layout, a missing label, an unreadable image: one line naming the file."""


class OutputsError(UsageError):
    """An outputs folder (ais_bench, legacy benchmark) that lacks a sample's output or holds an unreadable one."""
