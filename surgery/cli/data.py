"""surgery data make cityscapes|imagenet|dsb2018 DIR [--n 8] | surgery data prep RECIPE --data DIR -o OUT [--info F]"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from surgery import validate
from surgery.errors import UnknownNameError, UsageError
from surgery.eval import runner
from surgery.eval.datasets import KINDS, open_dataset
from surgery.eval.generate import SYNTHETIC_NOTE, make_dataset
from surgery.outputs import Outputs
from surgery.shapes import parse_shape
from surgery.validate import arg

from ._common import add_json, console, print_json, status, zoo
from ._run import progress_bar

NAME = "data"
HELP = "datasets: make a synthetic one in a guide's real layout, or preprocess one to the guide's .bin + .info"


def _size(text: str) -> tuple[int, int]:
    dims = parse_shape(text)
    if len(dims) != 2 or not all(isinstance(d, int) and d > 0 for d in dims):
        raise UsageError(f"--size expects HxW such as 96x96, got {text!r}")
    return validate.dim(dims[0], "--size"), validate.dim(dims[1], "--size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="write N synthetic samples in a dataset's real layout (not accuracy data)",
                          description="write N synthetic samples in a dataset's real layout (not accuracy data)")
    make.add_argument("kind", choices=KINDS, help="the layout")
    make.add_argument("dir", metavar="DIR", type=arg(validate.path, "DIR"), help="the dataset folder (new or empty)")
    make.add_argument("--n", type=arg(validate.count, "--n", maximum=100_000), default=8, help="samples (8)")
    make.add_argument("--seed", type=arg(validate.seed, "--seed"), default=0, help="seed (0)")
    make.add_argument("--size", type=_size, metavar="HxW", help="image size (default: Cityscapes 1024x2048, "
                      "DSB2018 96x96, ImageNet varied like the real val set)")
    add_json(make)
    prep = sub.add_parser("prep", help="preprocess a dataset as a recipe's guide does: one .bin per image, and "
                          "an .info list", description="preprocess a dataset as a recipe's guide does: one .bin per "
                          "image (raw float32), and a sorted .info list (get_info.py bin)")
    prep.add_argument("recipe", metavar="RECIPE", help="the zoo model whose preprocessing to run")
    prep.add_argument("--data", metavar="DIR", required=True, type=arg(validate.existing_folder, "--data"),
                      help="the dataset folder")
    prep.add_argument("-o", "--output", metavar="DIR", required=True, type=arg(validate.path, "-o"),
                      help="the folder of .bin files")
    prep.add_argument("--info", metavar="FILE", type=arg(validate.path, "--info"), help="also write this .info file")
    prep.add_argument("--mode", choices=("guide", "upstream"), default="guide", help="preprocessing (guide)")
    prep.add_argument("--limit", type=arg(validate.count, "--limit"), metavar="N", help="the first N samples")
    add_json(prep)


def _make(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    with progress_bar(not args.json) as progress:
        task = progress.add_task(f"{args.kind} images", total=args.n)
        made = make_dataset(args.kind, root, args.n, seed=args.seed, size=args.size,
                            on_image=lambda i: progress.update(task, completed=i + 1))
    size = "x".join(map(str, made.size)) if made.size else "varied sizes"
    if args.json:
        print_json({"kind": made.kind, "root": str(made.root), "samples": made.samples, "files": made.files,
                    "size": list(made.size) if made.size else None, "synthetic": True, "note": SYNTHETIC_NOTE})
        return 0
    console.print(f"[yellow]notice:[/] {escape(SYNTHETIC_NOTE)}")
    status(True, f"{made.samples} synthetic {made.kind} samples ({size}, seed {args.seed}) in {made.root}")
    return 0


def _prep(args: argparse.Namespace) -> int:
    recipes = zoo().recipes
    if args.recipe not in recipes:
        raise UnknownNameError("recipe", args.recipe, recipes)
    recipe = recipes[args.recipe]
    if recipe.evaluation is None:
        raise UsageError(f"recipe {recipe.name} has no evaluation (dataset and preprocessing)")
    spec = recipe.evaluation
    task = runner.EvalTask(spec, args.mode, recipe)
    dataset = open_dataset(spec.dataset, args.data, labels=False, limit=args.limit)
    plan = Outputs()
    out = plan.folder(args.output, "the .bin folder", flag="-o")
    info = plan.file(args.info, "the .info file", flag="--info", create_folder=True) if args.info else None
    with progress_bar(not args.json) as progress:
        bar = progress.add_task(f"{recipe.name} {args.mode} preprocessing", total=len(dataset.samples))
        written = runner.prepare_bins(dataset, task.preprocessor, out, info=info, info_size=spec.info_size,
                                      on_sample=lambda n: progress.update(bar, completed=n))
    if args.json:
        print_json({"recipe": recipe.name, "mode": args.mode, "bins": len(written), "folder": str(out),
                    "info": str(info) if info else None, "synthetic": dataset.synthetic})
        return 0
    for notice in dataset.notices:
        console.print(f"[yellow]notice:[/] {escape(notice)}")
    extra = f" and {info}" if info else ""
    status(True, f"{len(written)} .bin files ({recipe.name} {args.mode} preprocessing) in {out}{extra}")
    return 0


def run(args: argparse.Namespace) -> int:
    return _make(args) if args.action == "make" else _prep(args)
