"""End-to-end evaluation: the guides' datasets, preprocessing, file formats and metrics, and fidelity.

    from surgery.eval import open_dataset, EvalTask, run_accuracy, FidelityInstrument
    dataset = open_dataset("cityscapes", "data/cityscapes", prefer="labelIds", limit=8)
    task = EvalTask(recipe.evaluation, "guide", recipe)
    result = run_accuracy(dataset, task, infer)          # infer: batches -> outputs (a target's infer)
    Pipeline(passes, [FidelityInstrument(recipe, samples=8)])   # task-level fidelity per inexact pass

Modules: :mod:`~surgery.eval.datasets` (Cityscapes / ImageNet / DSB2018 readers),
:mod:`~surgery.eval.images` and :mod:`~surgery.eval.preprocess` (reads, resizes, each recipe's
preprocessing), :mod:`~surgery.eval.metrics`, :mod:`~surgery.eval.formats` (``.bin``/``.info``,
ais_bench and benchmark output folders), :mod:`~surgery.eval.fidelity`, :mod:`~surgery.eval.generate`
(synthetic datasets), :mod:`~surgery.eval.runner`, :mod:`~surgery.eval.result` (the record shape).
"""

from __future__ import annotations

from surgery.eval.datasets import Dataset, Sample, open_dataset
from surgery.eval.errors import DatasetError, OutputsError
from surgery.eval.fidelity import FidelityInstrument, make_agreement
from surgery.eval.formats import open_outputs, write_bin, write_info
from surgery.eval.generate import make_dataset
from surgery.eval.metrics import make_scorer
from surgery.eval.preprocess import Preprocessor
from surgery.eval.result import EvalResult
from surgery.eval.runner import EvalTask, prepare_bins, run_accuracy, run_fidelity, score_outputs

__all__ = ["Dataset", "DatasetError", "EvalResult", "EvalTask", "FidelityInstrument", "OutputsError", "Preprocessor",
           "Sample", "make_agreement", "make_dataset", "make_scorer", "open_dataset", "open_outputs", "prepare_bins",
           "run_accuracy", "run_fidelity", "score_outputs", "write_bin", "write_info"]
