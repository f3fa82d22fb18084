"""``--budget``, ``--fallback``, ``--calib``: the accuracy budget of inexact passes (``apply``; ``tune`` candidates)."""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from surgery import validate
from surgery.budget import Budget, BudgetCheck
from surgery.budget_eval import evaluator_for
from surgery.calibration import dataset_arrays, distribution_for_recipe, is_dataset
from surgery.errors import UsageError
from surgery.pass_infra import Pass
from surgery.pipeline import Instrument, StepReport
from surgery.shapes import Shape
from surgery.validate import arg

DEFAULT_JUDGE_SAMPLES = 32


def add_arguments(parser: argparse.ArgumentParser, *, defaults_none: bool = False) -> None:
    """The budget's flags; ``defaults_none`` (tune) leaves every default None, so only flags given reach a target."""
    g = parser.add_argument_group("accuracy budget (inexact passes, e.g. quantize_int8; tune: the INT8 candidate)")
    g.add_argument("--budget", metavar="METRIC=VALUE", type=Budget.parse,
                   help="how far the task may move: agreement=0.99 (fraction of the task's decisions kept vs the "
                        "model before; no labels), or top1=-0.5 / miou=-1.0 / iou=-0.5 (points, on labelled data)")
    g.add_argument("--fallback", action="store_true", default=None if defaults_none else False,
                   help="over budget: return the most costly layers to float, one at a time, until it holds")
    g.add_argument("--fallback-layers", type=arg(validate.count, "--fallback-layers"), metavar="N",
                   help="return at most N layers (default: as many as it takes)")
    g.add_argument("--budget-data", metavar="DIR",
                   help="what the budget is judged on: a zoo model's dataset (labels for top1/miou/iou), or for "
                        "other models a folder of .npz/.npy/.bin arrays (default: generated images)")
    g.add_argument("--budget-samples", type=arg(validate.count, "--budget-samples"),
                   metavar="N", help=f"images to judge on: generated, or the first N of --budget-data "
                                     f"({DEFAULT_JUDGE_SAMPLES})")
    g.add_argument("--calib", metavar="DIR", help="calibration inputs of quantize_int8 (its calib=DIR): a folder of "
                   ".npz/.npy/.bin arrays, or a zoo model's dataset (read through its preprocessing)")


def configure(passes: Sequence[Pass], args: argparse.Namespace, recipe: Any | None) -> list[Pass]:
    """The passes with ``--calib`` and a zoo recipe's input distribution given to quantize_int8 where unset."""
    from surgery.passes import QuantizeInt8

    out: list[Pass] = []
    quantizing = False
    for p in passes:
        if isinstance(p, QuantizeInt8):
            quantizing = True
            if args.calib and p.calib is None:
                p = dataclasses.replace(p, calib=_calibration_folder(args.calib, recipe, p.samples),
                                        distribution="auto")
            elif p.calib is None and p.distribution == "auto" and recipe is not None:
                p = dataclasses.replace(p, distribution=distribution_for_recipe(recipe))
        out.append(p)
    if args.calib and not quantizing:
        raise UsageError("--calib gives quantize_int8 its calibration inputs; add --pass quantize_int8")
    if (args.fallback or args.fallback_layers) and not args.budget:
        raise UsageError("--fallback keeps an accuracy budget: give --budget too (e.g. --budget agreement=0.99)")
    if (args.budget_data or args.budget_samples) and not args.budget:
        raise UsageError("--budget-data and --budget-samples say what --budget is judged on: give --budget too")
    if args.budget and all(p.exact for p in out):
        raise UsageError(f"--budget {args.budget} judges inexact passes, and every pass given is exact (their "
                         "outputs are verified equal)")
    return out


def _calibration_folder(calib: str, recipe: Any | None, samples: int) -> str:
    """``--calib DIR`` as quantize_int8 reads it: arrays as given, or a zoo dataset through its preprocessing."""
    if recipe is None or not is_dataset(recipe, calib):
        return calib
    out = Path(tempfile.mkdtemp(prefix="surgery-calib-"))
    atexit.register(shutil.rmtree, out, True)  # the arrays live as long as this command
    return str(dataset_arrays(recipe, calib, samples, out))


def instruments(args: argparse.Namespace, recipe: Any | None, input_shapes: dict[str, Shape] | None
                ) -> list[Instrument]:
    """The budget instrument when ``--budget`` is given."""
    if not args.budget:
        return []
    judge = evaluator_for(args.budget, recipe, data=args.budget_data,
                          samples=args.budget_samples or DEFAULT_JUDGE_SAMPLES, input_shapes=input_shapes)
    return [BudgetCheck(args.budget, judge, fallback=args.fallback, max_layers=args.fallback_layers)]


def step_line(step: StepReport) -> str | None:
    """The budget's figure of one step, for the step's lines under ``surgery apply``."""
    figures = step.figures.get("budget")
    if not figures or "skipped" in figures:
        return None
    text = f"budget {figures['budget']}: {figures['metric']} {figures['after']:.4f}"
    fell = figures.get("fallback")
    if fell:
        last = fell["judgement"]["after"] if fell.get("judgement") else figures["after"]
        text += (f" → {last:.4f} after returning {len(fell['kept_float'])} layer(s) to float "
                 f"({', '.join(fell['kept_float'][:6])}{', ...' if len(fell['kept_float']) > 6 else ''})")
    return text
