"""What verification established about each pass and about the run: the data model every reader shares.

"Verified" means compared. A step is *verified* only when every graph output of the model
after the pass was compared with its counterpart before the pass, on every sample (and, for
a pass that frees or changes the batch, at every batch size of the proof). Whatever could
not be compared is a *reason*, and one reason makes the step *unverified*. The status is
derived from the facts, never set by hand, so the order in which instruments record them
does not matter:

    failure recorded            → failed
    digest equal before/after   → unchanged   (nothing to compare: the model is the same bytes)
    any reason, or not compared → unverified
    otherwise                   → verified

The CLI's closing line, the run record and ``surgery run`` all read these objects; none of
them matches strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

VERIFIED, UNVERIFIED, FAILED, UNCHANGED = "verified", "unverified", "failed", "unchanged"
STATUSES = (VERIFIED, UNVERIFIED, FAILED, UNCHANGED)
INPUT_STEP = "input"  # the name under which problems of the model given (before any pass) are listed


@dataclass
class Verification:
    """One pass's verification: the facts the instruments recorded and the status they imply.

    Attributes:
        compared: parity compared every output of the new model on every sample.
        unchanged: the model's digest is the same before and after the pass.
        failure: why verification failed (the run stops), or None.
        reasons: why the step is not verified (each one enough to make it unverified).
        hazards: batch hazards found in the new model (constant shapes that pin the batch).
        digest_before: sha256 of the model before the pass.
        digest_after: sha256 of the model after the pass.
        batches: the batch sizes the new model was proven at (empty when no batch proof ran).
        samples: per sample, where it came from (distribution and seed, or the --inputs file).
    """

    compared: bool = False
    unchanged: bool = False
    failure: str | None = None
    reasons: list[str] = field(default_factory=list)
    hazards: list[str] = field(default_factory=list)
    digest_before: str | None = None
    digest_after: str | None = None
    batches: list[int] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failure is not None:
            return FAILED
        if self.unchanged:
            return UNCHANGED
        if self.reasons or not self.compared:
            return UNVERIFIED
        return VERIFIED

    @property
    def ok(self) -> bool:
        """Verified or unchanged: nothing left to check."""
        return self.status in (VERIFIED, UNCHANGED)

    def unverified(self, reason: str) -> None:
        """Record one thing that could not be checked (duplicates are kept once)."""
        if reason not in self.reasons:
            self.reasons.append(reason)

    def hazard(self, text: str) -> None:
        if text not in self.hazards:
            self.hazards.append(text)

    def fail(self, reason: str) -> None:
        self.failure = reason

    def why(self) -> str:
        """One line: the failure, or the reasons joined, or the status."""
        if self.failure is not None:
            return self.failure
        if self.reasons:
            return "; ".join(self.reasons)
        if not self.compared and not self.unchanged:
            return "not compared"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "compared": self.compared, "unchanged": self.unchanged,
                "failure": self.failure, "reasons": list(self.reasons), "hazards": list(self.hazards),
                "digest_before": self.digest_before, "digest_after": self.digest_after,
                "batches": list(self.batches), "samples": [dict(s) for s in self.samples]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        known = {k: data[k] for k in ("compared", "unchanged", "failure", "reasons", "hazards", "digest_before",
                                      "digest_after", "batches", "samples") if k in data}
        return cls(**known)


@dataclass(frozen=True)
class Unverified:
    """A step (or the input model, ``step == "input"``) that is not verified, and why."""

    step: str
    index: int | None
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.step} ({'; '.join(self.reasons)})"

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "index": self.index, "reasons": list(self.reasons)}


@dataclass
class RunVerification:
    """The run's verdict: verified only when enabled, the input was sound and every step is verified or unchanged.

    Attributes:
        enabled: verification ran at all (False with ``--no-verify`` or a dry run).
        input_problems: what was already wrong with the model given (the checker's full check).
        unverified: each step not verified, with its reasons; the input model first when it had problems.
        failed: the step whose verification failed, if any.
        off_reason: why verification did not run (``--no-verify``, dry run).
    """

    enabled: bool = True
    input_problems: list[str] = field(default_factory=list)
    unverified: list[Unverified] = field(default_factory=list)
    failed: list[Unverified] = field(default_factory=list)
    off_reason: str = ""

    @property
    def verified(self) -> bool:
        return self.enabled and not self.unverified and not self.failed

    @classmethod
    def from_steps(cls, steps: Sequence[Any], *, enabled: bool = True, input_problems: Iterable[str] = (),
                   off_reason: str = "") -> RunVerification:
        """Collect the verdict from step reports (anything with ``name``, ``index`` and ``verification``)."""
        problems = list(input_problems)
        unverified: list[Unverified] = []
        failed: list[Unverified] = []
        if enabled and problems:
            unverified.append(Unverified(INPUT_STEP, None, tuple(problems)))
        for step in steps:
            v: Verification = step.verification
            if v.status == FAILED:
                failed.append(Unverified(step.name, step.index, (v.failure or "failed",)))
            elif enabled and v.status == UNVERIFIED:
                unverified.append(Unverified(step.name, step.index, tuple(v.reasons) or ("not compared",)))
        return cls(enabled=enabled, input_problems=problems, unverified=unverified, failed=failed,
                   off_reason=off_reason)

    def describe(self) -> str:
        """``verified``, or ``NOT VERIFIED: fix_shapes (why), input (why)``, or ``not verified (--no-verify)``."""
        if not self.enabled:
            return f"not verified ({self.off_reason})" if self.off_reason else "not verified"
        if self.failed:
            return "FAILED: " + ", ".join(u.describe() for u in self.failed)
        if self.unverified:
            return "NOT VERIFIED: " + ", ".join(u.describe() for u in self.unverified)
        return "verified"

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "enabled": self.enabled, "off_reason": self.off_reason,
                "input_problems": list(self.input_problems),
                "unverified": [u.to_dict() for u in self.unverified], "failed": [u.to_dict() for u in self.failed]}
