"""The target layer: one protocol for every place a model runs (see :mod:`surgery.targets.base`)."""

from __future__ import annotations

from surgery.targets.base import BENCH, COMPILE, TUNE, Events, Outcome, Request, Target, get_target
from surgery.targets.measure import Job, Measure, time_calls
from surgery.targets.model import ModelSpec, TargetModel, resolve_target_model
from surgery.targets.plan import Plan, Step, StepInfo

__all__ = ["BENCH", "COMPILE", "TUNE", "Events", "Job", "Measure", "ModelSpec", "Outcome", "Plan", "Request", "Step",
           "StepInfo", "Target", "TargetModel", "get_target", "resolve_target_model", "time_calls"]
