"""The NPU-host evaluation as a plan: what ``surgery eval --target ais-bench --dry-run`` prints.

The guides' loop, step by step: preprocess the dataset to ``.bin`` files and an ``.info``
list (``surgery data prep``, the guide's preprocess script and ``get_info.py``), compile the
model (``surgery compile``, i.e. atc) unless an ``.om`` is given, run ais_bench over the
``.bin`` folder, then score its output folder here (``surgery eval --outputs``). The
ais_bench step is built by the tool adapter and handed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from surgery.targets.plan import Plan, Step, StepInfo


@dataclass(frozen=True)
class NpuEval:
    """The paths and flags of one NPU-host evaluation.

    Attributes:
        model: the MODEL argument (zoo name, .onnx or .om).
        recipe: the zoo recipe whose preprocessing and metric apply.
        data: the dataset folder on the NPU host.
        mode: ``guide`` or ``upstream``.
        batch: the om's batch size.
        workdir: where .bin files, the .info, the om and the outputs go.
        limit: the first N samples only.
        zoo_flags: ``--checkpoint`` / ``--variant`` tokens of a zoo model.
        info_size: the width and height the guide writes in its .info.
    """

    model: str
    recipe: str
    data: str
    mode: str
    batch: int
    workdir: Path
    limit: int | None = None
    zoo_flags: tuple[str, ...] = ()
    info_size: tuple[int, int] | None = None

    @property
    def prep_dir(self) -> Path:
        return self.workdir / "prep_dataset"

    @property
    def info(self) -> Path:
        return self.workdir / f"{self.recipe}_prep_bin.info"

    @property
    def om(self) -> Path:
        if self.model.endswith(".om"):
            return Path(self.model)
        name = Path(self.model).stem if self.model.endswith(".onnx") else self.recipe  # as surgery compile names it
        return self.workdir / f"{name}_bs{self.batch}.om"

    @property
    def output(self) -> Path:
        return self.workdir / "result"

    @property
    def output_dirname(self) -> str:
        return f"eval_bs{self.batch}"

    @property
    def outputs(self) -> Path:
        return self.output / self.output_dirname

    def _limit(self) -> list[str]:
        return ["--limit", str(self.limit)] if self.limit else []


def npu_eval_plan(job: NpuEval, ais_bench: Step, compile_soc: str | None = None) -> Plan:
    """The four steps of an NPU-host evaluation (three when MODEL is an .om)."""
    plan = Plan(title=f"evaluate {job.model} on an Ascend NPU with ais_bench ({job.mode} mode, batch {job.batch})")
    prep = ["surgery", "data", "prep", job.recipe, "--data", job.data, "-o", str(job.prep_dir), "--info",
            str(job.info), "--mode", job.mode, *job._limit()]
    size = f" (.info width/height {job.info_size[0]} {job.info_size[1]}, as the guide's get_info.py)" \
        if job.info_size else ""
    plan.add(Step(tuple(prep), f"preprocess {job.data} as the {job.recipe} {job.mode} does: one .bin per image, "
                  f"and {job.info.name}{size}", "internal", produces=(str(job.prep_dir), str(job.info)),
                  info=StepInfo("prep")))
    if not job.model.endswith(".om"):
        argv: Sequence[str] = ["surgery", "compile", job.model, *job.zoo_flags, "--batch", str(job.batch),
                               "-o", str(job.workdir), *(["--soc", compile_soc] if compile_soc else [])]
        plan.add(Step(tuple(argv), f"compile {job.model} for batch {job.batch} with atc → {job.om}", "atc",
                      produces=(str(job.om),), info=StepInfo("atc", batch=job.batch, om=str(job.om))))
    plan.add(ais_bench)
    score = ["surgery", "eval", job.model if not job.model.endswith(".om") else job.recipe, *job.zoo_flags,
             "--data", job.data, "--outputs", str(job.outputs), "--mode", job.mode, *job._limit()]
    plan.add(Step(tuple(score), f"score {job.outputs} against the labels ({job.mode} metric)", "internal",
                  info=StepInfo("score")))
    plan.notes.append("run these on the NPU host (surgery installed there), or copy the outputs folder back and "
                      "run the last step here")
    return plan
