"""The target protocol: everywhere a model runs goes through one of these.

A target prepares a model for a batch (re-shape, compile), plans the steps, runs them and
parses what they print into records. ``surgery bench``, ``tune`` and ``compile`` build a
typed, frozen request and call a target; they never call a tool directly. Targets live in
``surgery.tools`` (onnxruntime, atc + ais_bench, trtexec); the CLI hands the table of them
to the verbs.

Options that only some targets honour travel in a request's ``settings`` (flag name →
value, only the flags the user gave). A target declares which it honours per verb; any
other is a usage error naming the target, so no option is accepted and silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from surgery.errors import UnknownNameError, UsageError
from surgery.records import PerfRecord
from surgery.shapes import Shape
from surgery.targets.measure import ProgressFn
from surgery.targets.model import ModelSpec, TargetModel
from surgery.targets.plan import Plan, Step

BENCH, TUNE, COMPILE = "bench", "tune", "compile"
EVAL = "eval"  # run a dataset through the model: Target.infer


@dataclass(frozen=True)
class Events:
    """Callbacks a verb gives a target to show progress; all optional."""

    on_notice: Callable[[str], None] | None = None
    on_total: Callable[[int], None] | None = None  # how many units of work (batches, candidates) to expect
    on_batch: Callable[[int, int], None] | None = None
    on_progress: ProgressFn | None = None
    on_step: Callable[[int, Step], None] | None = None
    on_trial: Callable[[Any], None] | None = None
    on_phase: Callable[[str], None] | None = None

    def notice(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)


@dataclass(frozen=True)
class Request:
    """What every verb asks of a target.

    Attributes:
        model: the MODEL argument and its zoo options.
        batches: batch sizes asked for (None: the recipe's, else the verb's default).
        input_shapes: ``--input-shapes`` (see :func:`surgery.shapes.shapes_at` for the rule).
        settings: target-specific options the user gave, by flag name (``threads``, ``fp16``...).
        workdir: where the target writes models, logs and results (None: its default); a setting
            only vendor targets honour, like ``timeout``.
        timeout: seconds per tool command.
        output: the model the verb writes (tune), if any.
        others: more models to measure together with ``model`` (bench: interleaved in one
            process, ``model`` first, the reference of the ratios); only targets whose
            ``paired`` names the verb accept them.
    """

    model: ModelSpec
    batches: tuple[int, ...] | None = None
    input_shapes: Mapping[str, Shape] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    timeout: float | None = None
    output: str | None = None
    others: tuple[ModelSpec, ...] = ()

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """Every model of the request, ``model`` first."""
        return (self.model, *self.others)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value is None else value


@dataclass
class Member:
    """One of several models measured together: the model and its records (one per batch)."""

    model: TargetModel
    records: list[PerfRecord] = field(default_factory=list)


@dataclass
class Outcome:
    """What a target did: perf records, tool settings for the record, and what it ran.

    Attributes:
        records: perf records (one per batch and build).
        tools: tool versions and settings for the run record.
        model: the model as the target resolved it (path, digest, recipe).
        plan: the plan it ran (vendor targets).
        steps: the step results (vendor targets).
        detail: the verb's own result (a search result for tune, builds for compile...).
        members: with several models measured together, each model and its records, in the
            order asked (``records`` and ``model`` are the first one's).
    """

    records: list[PerfRecord] = field(default_factory=list)
    tools: dict[str, Any] = field(default_factory=dict)
    model: TargetModel | None = None
    plan: Plan | None = None
    steps: list[Any] = field(default_factory=list)
    detail: Any = None
    members: list[Member] = field(default_factory=list)


class Target:
    """A place models run. Subclasses set ``name``, ``summary`` and ``honours``, and override the verbs they do."""

    name: str = ""
    summary: str = ""
    honours: ClassVar[Mapping[str, frozenset[str]]] = {}  # verb -> settings it honours
    paired: ClassVar[frozenset[str]] = frozenset()  # verbs that measure several models together

    def check(self, verb: str, request: Request) -> None:
        """Refuse a verb this target does not do, and any setting it would not honour.

        Raises:
            UsageError: naming the target and the flag.
        """
        if verb not in self.honours:
            raise UsageError(f"target {self.name} cannot {verb}")
        if request.others and verb not in self.paired:
            raise UsageError(f"target {self.name} measures one model per {verb}; measure several together on an "
                             "in-process target (ort-cpu, ort-cuda, ort-trt), or diff their records (unpaired)")
        given = set(request.settings) | {name for name, value in (("workdir", request.workdir),
                                                                  ("timeout", request.timeout)) if value is not None}
        refused = sorted(given - self.honours[verb])
        if refused:
            flag = "--" + refused[0].replace("_", "-")
            accepted = ", ".join("--" + s.replace("_", "-") for s in sorted(self.honours[verb])) or "none"
            raise UsageError(f"{flag} is not an option of {verb} on target {self.name} (its options: {accepted})")

    def require(self, verb: str) -> None:
        """Raise ToolNotFoundError (one line: the tool and how to provide it) when ``verb`` cannot run here.

        In-process targets check their runtime when they run; vendor targets say it before any work.
        """

    def plan(self, verb: str, request: Request) -> Plan:
        """The exact commands a real run would execute (``--dry-run``)."""
        raise UsageError(f"--dry-run prints vendor-tool commands; target {self.name} runs in-process, "
                         "there is nothing to plan")

    def bench(self, request: Request, events: Events) -> Outcome:
        raise UsageError(f"target {self.name} cannot bench")

    def tune(self, request: Request, events: Events) -> Outcome:
        raise UsageError(f"target {self.name} cannot tune")

    def compile(self, request: Request, events: Events) -> Outcome:
        raise UsageError(f"target {self.name} cannot compile")

    def infer(self, request: Request, batches: Iterable[Mapping[str, Any]], events: Events,
              outputs: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Run ``request.model`` on each batch of feeds (input name → array), lazily: one output dict per batch.

        ``outputs`` names the outputs to fetch (default: all). ``surgery eval`` calls it; a target
        that runs elsewhere (an NPU host) scores that host's outputs with ``surgery eval --outputs``.
        """
        raise UsageError(f"target {self.name} cannot run inference in this process: run the model on its host "
                         "(surgery eval --target ais-bench --dry-run prints the commands), then score its outputs "
                         "with surgery eval --outputs DIR")


def get_target(targets: Mapping[str, Target], name: str, verb: str) -> Target:
    """The target called ``name`` that does ``verb``.

    Raises:
        UnknownNameError: no such target (with a did-you-mean over the targets that do ``verb``).
    """
    able = {k: t for k, t in targets.items() if verb in t.honours}
    if name not in able:
        if name in targets:
            raise UsageError(f"target {name} cannot {verb} (targets that can: {', '.join(able)})")
        raise UnknownNameError("target", name, able)
    return able[name]
