"""surgery eval MODEL [AFTER] (--data DIR | --generate N) [--outputs DIR] [--target ...] [--mode guide|upstream]"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.errors import UnknownNameError, UsageError
from surgery.eval import before_after, formats, runner
from surgery.eval import fidelity as fid
from surgery.eval.datasets import open_dataset
from surgery.eval.generate import SYNTHETIC_NOTE
from surgery.eval.metrics import SCORERS
from surgery.eval.result import EvalResult
from surgery.modelref import ModelRef, ZooOptions, resolve_model
from surgery.outputs import Outputs
from surgery.recipe import Recipe
from surgery.records import RunRecord
from surgery.shapes import shapes_at
from surgery.targets import Events, ModelSpec, Request, get_target
from surgery.targets.base import EVAL
from surgery.targets.model import file_stem
from surgery.validate import arg

from . import _targets
from ._common import (
    add_json,
    add_shapes,
    add_zoo,
    console,
    print_json,
    print_table,
    shapes_arg,
    status,
    zoo,
    zoo_options,
)
from ._run import notice_printer, print_plan, progress_bar

NAME = "eval"
HELP = ("evaluate a model on its guide's dataset (accuracy, beside the guide's figure), score NPU outputs, or "
        "measure a rewrite's fidelity to the original")
TASK_METRICS = {"segmentation": ("icnet_segmentation", "mmseg_segmentation"),
                "binary_segmentation": ("iou_raw_logits", "iou_sigmoid_batch"), "classification": ("topk",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name (with AFTER: the model "
                        "before the rewrite)")
    parser.add_argument("after", metavar="AFTER", nargs="?", help="the rewritten model: measure how far it agrees "
                        "with MODEL (fidelity; no labels needed)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", type=arg(validate.path, "--data"),
                      help="the dataset in its real layout (Cityscapes, ImageNet val, DSB2018)")
    data.add_argument("--generate", type=arg(validate.count, "--generate"), metavar="N",
                      help="fidelity on N images generated in the model's input distribution (no dataset)")
    data.add_argument("--outputs", metavar="DIR", type=arg(validate.existing_folder, "--outputs"),
                      help="score outputs made elsewhere: an ais_bench / ais_infer / benchmark output folder")
    data.add_argument("--outputs-layout", choices=("auto", *formats.LAYOUTS), default="auto",
                      help="how --outputs names files (auto: from its summary and indices)")
    data.add_argument("--limit", type=arg(validate.count, "--limit"), metavar="N",
                      help="the first N samples (sorted order)")
    parser.add_argument("--target", default="ort-cpu", help=f"where to run: {', '.join(_targets.names(EVAL))} "
                        "(ort-cpu); ais-bench with --dry-run plans the NPU-host run")
    parser.add_argument("--batch", type=arg(validate.count, "--batch"), default=1, metavar="N",
                        help="images per inference call (1)")
    parser.add_argument("--mode", choices=("guide", "upstream"), default="guide",
                        help="preprocessing and metric as the guide does (default) or as the upstream project does")
    parser.add_argument("--recipe", metavar="NAME", help="whose dataset, preprocessing and metric (default: "
                        "MODEL's, when it is a zoo name)")
    parser.add_argument("--task", choices=fid.TASKS, help="fidelity of a model with no recipe: the task kind")
    parser.add_argument("--metric", metavar="NAME", help=f"another metric of the same task ({', '.join(SCORERS)})")
    parser.add_argument("--seed", type=arg(validate.seed, "--seed"), default=0, help="seed of --generate (0)")
    parser.add_argument("--threads", type=arg(validate.threads, "--threads"), metavar="N",
                        help="onnxruntime intra-op threads (0: default)")
    parser.add_argument("--worst", type=arg(validate.count, "--worst", minimum=0), default=5, metavar="K",
                        help="name the K worst images (5)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: <model>.eval.json, "
                        "fidelity <after>.fidelity.json)")
    parser.add_argument("--result-json", metavar="FILE", help="classification: also write the guide's result.json")
    parser.add_argument("--after-variant", metavar="KEY=VALUE", action="append", default=[],
                        help="a variant of AFTER when it is a zoo name, e.g. ppm=ascend (repeatable)")
    add_shapes(parser)
    npu = parser.add_argument_group("NPU host (ais-bench)")
    npu.add_argument("--dry-run", action="store_true", help="print the NPU-host evaluation: preprocess to .bin + "
                     ".info, atc, ais_bench, then surgery eval --outputs; run nothing")
    npu.add_argument("--workdir", metavar="DIR", help="where the plan puts .bin files, the om and outputs "
                     "(default: ./eval-<model>)")
    npu.add_argument("--device", type=arg(validate.count, "--device", minimum=0), metavar="ID",
                     help="ais_bench NPU device id")
    npu.add_argument("--soc", metavar="SOC", help="the atc --soc_version of the compile step")
    add_zoo(parser)
    add_json(parser)


# ---------------------------------------------------------------------------
# what the arguments name


def _recipe(args: argparse.Namespace, required: bool) -> Recipe | None:
    recipes = zoo().recipes
    name = args.recipe or (args.model if zoo().is_name(args.model) else None)
    if name is None:
        if required:
            raise UsageError(f"{args.model} is not a zoo model: give --recipe NAME (whose dataset, preprocessing "
                             f"and metric: {', '.join(sorted(recipes))})")
        return None
    if name not in recipes:
        raise UnknownNameError("recipe", name, recipes)
    recipe = recipes[name]
    if recipe.evaluation is None:
        raise UsageError(f"recipe {name} has no evaluation (dataset, preprocessing, metric)")
    return recipe


def _task(args: argparse.Namespace, recipe: Recipe) -> runner.EvalTask:
    assert recipe.evaluation is not None
    metric = ""
    if args.metric:
        allowed = TASK_METRICS[recipe.evaluation.task]
        if args.metric not in allowed:
            raise UsageError(f"--metric {args.metric} does not score a {recipe.evaluation.task} model "
                             f"(its metrics: {', '.join(allowed)})")
        metric = args.metric
    return runner.EvalTask(recipe.evaluation, args.mode, recipe, metric=metric)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"threads": args.threads} if args.threads is not None else {}


def _target(args: argparse.Namespace) -> Any:
    table = _targets.targets()
    if args.target in table and EVAL not in table[args.target].honours:
        raise UsageError(f"target {args.target} runs on its own host: --dry-run prints the commands, then "
                         "`surgery eval MODEL --data DIR --outputs OUT` scores what it wrote")
    target = get_target(table, args.target, EVAL)
    return target


class _Model:
    """A resolved model: its path and digest, its image input and the output that is scored."""

    def __init__(self, ref: ModelRef, wanted: str | int):
        from surgery.graph import load_model_file

        loaded = load_model_file(ref.path, load_external_data=False)
        self.ref, self.path, self.digest = ref, ref.path, loaded.digest
        self.io = runner.model_io(loaded.model, wanted, str(ref.path))

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "digest": self.digest, "zoo": self.ref.recipe.name if self.ref.recipe else None,
                "input": self.io.input.name, "output": self.io.output}


def _resolve(arg_text: str, options: ZooOptions, wanted: str | int, quiet: bool) -> _Model:
    ref = resolve_model(arg_text, zoo(), options)
    for notice in ref.notices:
        notice_printer(quiet)(notice)
    return _Model(ref, wanted)


def _infer(target: Any, model: _Model, args: argparse.Namespace, events: Events) -> runner.Infer:
    request = Request(model=ModelSpec(str(model.path)), settings=_settings(args))
    target.check(EVAL, request)

    def infer(batches: Any) -> Any:
        feeds = ({model.io.input.name: b} for b in batches)
        for out in target.infer(request, feeds, events, outputs=[model.io.output]):
            yield out[model.io.output]

    return infer


# ---------------------------------------------------------------------------
# output


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _metrics_table(result: EvalResult, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("what it is")
    for key, value in result.metrics.items():
        mark = " *" if key == result.primary else ""
        table.add_row(escape(key + mark), _fmt(value), escape(result.notes.get(key, "")))
    return table


def _published_table(result: EvalResult) -> Table | None:
    if not result.published:
        return None
    sources = sorted({s for row in result.published for s in row["figures"]})
    table = Table(title="beside the guide's published figures", title_justify="left")
    table.add_column("published")
    table.add_column("ours", justify="right")
    for source in sources:
        table.add_column(escape(source), justify="right")
    for row in result.published:
        scale = row["scale"]
        figures = [f"{row['figures'][s]:g}" if s in row["figures"] else "" for s in sources]
        table.add_row(escape(f"{row['key']} ({row['metric']})"), f"{row['value']:.{2 if scale == 100 else 4}f}",
                      *figures)
    return table


def _worst_table(result: EvalResult, count: int) -> Table | None:
    worst = result.worst(count)
    if not worst or count == 0:
        return None
    keys = [k for k in worst[0] if k != "id"]
    table = Table(title=f"worst {len(worst)} of {result.samples} by {result.worst_key}", title_justify="left")
    table.add_column("image")
    for k in keys:
        table.add_column(escape(k), justify="right")
    for s in worst:
        table.add_row(escape(str(s["id"])), *(_fmt(s.get(k)) for k in keys))
    return table


def _record_path(args: argparse.Namespace, plan: Outputs, default_name: str, model: dict[str, Any]) -> Path:
    base = Path(args.after if args.after and not zoo().is_name(args.after) else args.model)
    folder = base.parent if base.suffix == ".onnx" and not zoo().is_name(str(base)) else Path.cwd()
    path, note = plan.record(args.record, folder / default_name, model=model)
    if note and not args.json:
        console.print(f"[yellow]notice:[/] {escape(note)}")
    return path


def _plan_result_json(args: argparse.Namespace, plan: Outputs, recipe: Recipe) -> None:
    if not args.result_json:
        return
    assert recipe.evaluation is not None
    if recipe.evaluation.task != "classification":
        raise UsageError(f"--result-json writes the classification guides' result.json; {recipe.name} is "
                         f"{recipe.evaluation.task.replace('_', ' ')}")
    plan.file(args.result_json, "the guide's result.json", flag="--result-json")


def _report(args: argparse.Namespace, result: EvalResult, record: RunRecord, path: Path, summary: str) -> int:
    record.eval = result.to_dict()
    record.status = "PASSED"
    record.save(path)
    if args.result_json and "guide_result" in result.extra:
        import json

        from surgery.atomic import write_text_atomic

        write_text_atomic(args.result_json, json.dumps(result.extra["guide_result"]) + "\n")
    if args.json:
        print_json(record.to_dict())
        return 0
    for notice in result.notices:
        console.print(f"[yellow]notice:[/] {escape(notice)}")
    title = "fidelity (after vs before)" if result.kind == "fidelity" else \
        f"{result.recipe or ''} {result.metric} ({result.mode} mode)".strip()
    print_table(_metrics_table(result, title))
    accuracy = result.extra.get("accuracy")
    if accuracy:
        table = Table(title=f"accuracy ({accuracy['metric']})", title_justify="left")
        for col in ("metric", "before", "after"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for key, value in accuracy["before"].items():
            table.add_row(escape(key), _fmt(value), _fmt(accuracy["after"].get(key)))
        print_table(table)
    for table in (_published_table(result), _worst_table(result, args.worst)):
        if table is not None:
            print_table(table)
    if result.guide_line:
        console.print(f"guide's line: {escape(result.guide_line)}", markup=True)
    if result.synthetic:
        console.print(f"[yellow]notice:[/] {escape(SYNTHETIC_NOTE)}")
    console.print(f"record {escape(str(path))}")
    status(True, summary)
    return 0


def _progress(progress: Any, total: int, label: str) -> Any:
    task = progress.add_task(label, total=total)

    def on_sample(done: int) -> None:
        progress.update(task, completed=done)

    return on_sample


def _new_record(args: argparse.Namespace) -> RunRecord:
    return RunRecord(command="eval", argv=["surgery", *args.argv], target=None if args.outputs else args.target)


def _throughput(result: EvalResult) -> str:
    total = result.seconds.get("total")
    return f"{result.samples / total:.1f} images/s" if total else ""


# ---------------------------------------------------------------------------
# the four ways


def _accuracy(args: argparse.Namespace) -> int:
    recipe = _recipe(args, required=True)
    assert recipe is not None and recipe.evaluation is not None
    task = _task(args, recipe)
    dataset = open_dataset(recipe.evaluation.dataset, args.data, prefer=recipe.evaluation.labels, limit=args.limit)
    target = _target(args)
    plan = Outputs()
    _plan_result_json(args, plan, recipe)  # before the export a zoo name may cost
    model = _resolve(args.model, zoo_options(args), recipe.evaluation.output, args.json)
    plan.input(model.path, "the model")
    path = _record_path(args, plan, f"{file_stem(Path(args.model))}.eval.json", {"digest": model.digest})
    events = Events(on_notice=notice_printer(args.json))
    with progress_bar(not args.json) as progress:
        on_sample = _progress(progress, len(dataset.samples), f"{recipe.name} on {args.target}")
        result = runner.run_accuracy(dataset, task, _infer(target, model, args, events), batch=args.batch,
                                     on_sample=on_sample)
    result.source = {"target": args.target, "batch": args.batch}
    result.models = {"model": model.describe()}
    record = _new_record(args)
    record.input_model = model.describe()
    summary = (f"{recipe.name} on {args.target}: {result.headline()} over {result.samples} images "
               f"({args.mode} mode, {_throughput(result)})")
    return _report(args, result, record, path, summary)


def _score(args: argparse.Namespace) -> int:
    recipe = _recipe(args, required=True)
    assert recipe is not None and recipe.evaluation is not None
    task = _task(args, recipe)
    dataset = open_dataset(recipe.evaluation.dataset, args.data, prefer=recipe.evaluation.labels, limit=args.limit)
    folder = formats.open_outputs(args.outputs, args.outputs_layout)
    layout, index, described = None, 0, {"zoo": recipe.name}
    if args.model.endswith(".onnx") or (not zoo().is_name(args.model) and Path(args.model).is_file()
                                        and not args.model.endswith(".om")):
        model = _resolve(args.model, zoo_options(args), recipe.evaluation.output, args.json)
        layout, index, described = model.io.layout, model.io.index, model.describe()
    plan = Outputs()
    path = _record_path(args, plan, f"{file_stem(Path(args.model))}.eval.json", described)
    _plan_result_json(args, plan, recipe)
    with progress_bar(not args.json) as progress:
        on_sample = _progress(progress, len(dataset.samples), f"scoring {folder.folder.name}")
        result = runner.score_outputs(dataset, task, folder, index=index, model_layout=layout, on_sample=on_sample)
    result.models = {"model": described}
    record = _new_record(args)
    record.input_model = described
    summary = (f"{recipe.name} outputs in {folder.folder}: {result.headline()} over {result.samples} images "
               f"({args.mode} mode, {folder.layout} layout)")
    return _report(args, result, record, path, summary)


def _fidelity(args: argparse.Namespace) -> int:
    recipe = _recipe(args, required=False)
    if recipe is None and not args.task:
        raise UsageError(f"{args.model} is not a zoo model: give --recipe NAME or --task "
                         f"{'|'.join(fid.TASKS)} (how to compare the outputs)")
    spec = fid.TaskSpec(recipe if recipe is not None else args.task, args.mode)
    target = _target(args)
    before = _resolve(args.model, zoo_options(args), spec.output, args.json)
    from ._common import parse_variants

    after_options = ZooOptions(variants=parse_variants(args.after_variant))
    if after_options.variants and not zoo().is_name(args.after):
        raise UsageError(f"--after-variant applies to a zoo AFTER, and {args.after} is a file path")
    after = _resolve(args.after, after_options, spec.output, args.json)
    plan = Outputs()
    plan.input(before.path, "the model before")
    plan.input(after.path, "the model after")
    path = _record_path(args, plan, f"{file_stem(Path(args.after))}.fidelity.json", {"digest": after.digest})
    events = Events(on_notice=notice_printer(args.json))
    if args.data and recipe is not None:
        _task(args, recipe)  # --metric checked against the task before any image is read
    shape = shapes_at([before.io.input], None, shapes_arg(args))[before.io.input.name] if args.generate else None
    with progress_bar(not args.json) as progress:
        task = progress.add_task("before vs after", total=1)
        result = before_after.compare(
            spec, _infer(target, before, args, events), _infer(target, after, args, events), recipe=recipe,
            data=args.data, generate=args.generate, input_shape=shape, seed=args.seed, batch=args.batch,
            limit=args.limit, metric=args.metric or "", on_total=lambda n: progress.update(task, total=n),
            on_sample=lambda done: progress.update(task, completed=done))
    result.source = {"target": args.target, "batch": args.batch}
    result.models = {"before": before.describe(), "after": after.describe()}
    record = _new_record(args)
    record.input_model, record.output_model = before.describe(), after.describe()
    summary = f"{result.headline()} over {result.samples} images ({_throughput(result)})"
    return _report(args, result, record, path, summary)


def _dry_run(args: argparse.Namespace) -> int:
    from surgery.tools.ascend import ais_bench

    from surgery.eval.npu_plan import NpuEval, npu_eval_plan

    if args.target != "ais-bench":
        raise UsageError(f"--dry-run plans the NPU-host evaluation: give --target ais-bench (target {args.target} "
                         "runs here, there is nothing to plan)")
    if args.after or args.generate or args.outputs:
        raise UsageError("--dry-run plans one model's evaluation on --data; drop AFTER, --generate and --outputs")
    if not args.data:
        raise UsageError("--dry-run needs --data DIR (the dataset's folder on the NPU host)")
    recipe = _recipe(args, required=True)
    assert recipe is not None and recipe.evaluation is not None
    flags: list[str] = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    for item in args.variant:
        flags += ["--variant", item]
    job = NpuEval(model=args.model, recipe=recipe.name, data=args.data, mode=args.mode, batch=args.batch,
                  workdir=Path(args.workdir or f"eval-{file_stem(Path(args.model))}"), limit=args.limit,
                  zoo_flags=tuple(flags), info_size=recipe.evaluation.info_size)
    options = ais_bench.AisBenchOptions(model=str(job.om), input=str(job.prep_dir), output=str(job.output),
                                        output_dirname=job.output_dirname, outfmt="BIN", batchsize=args.batch,
                                        device=args.device)
    step = ais_bench.step(options, f"run {job.om.name} on every .bin of {job.prep_dir} → {job.outputs}",
                          batch=args.batch)
    return print_plan(npu_eval_plan(job, step, compile_soc=args.soc), "eval", args.json)


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    if args.workdir or args.device is not None or args.soc:
        raise UsageError("--workdir, --device and --soc belong to the NPU-host plan: add --dry-run --target ais-bench")
    if args.outputs and (args.after or args.generate):
        raise UsageError("--outputs scores one model's outputs against labels; drop AFTER and --generate")
    if args.generate and args.data:
        raise UsageError("give --data DIR or --generate N, not both")
    if args.generate and not args.after:
        raise UsageError("--generate measures fidelity: give MODEL and AFTER (the model before and after a rewrite)")
    if not args.data and not args.generate:
        raise UsageError("give --data DIR (the dataset), or --generate N with MODEL AFTER for fidelity")
    if args.after_variant and not args.after:
        raise UsageError("--after-variant needs AFTER")
    if args.result_json and args.after:
        raise UsageError("--result-json writes an accuracy result; fidelity has none")
    if args.limit and args.generate:
        raise UsageError("--limit applies to --data; --generate N already says how many images")
    if args.outputs:
        return _score(args)
    if args.after:
        return _fidelity(args)
    return _accuracy(args)
