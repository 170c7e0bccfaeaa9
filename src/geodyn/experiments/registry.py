"""Experiments: each claim of the paper as code that returns checks, controls, figures, data and a verdict.

An experiment declares its claim (equation numbers, one sentence, the paper section) and its sizes
("quick" runs in seconds for CI and the demo, "full" is the publication size). Its function receives a
:class:`Context` and returns an :class:`Outcome`.

Evidence has two halves. The **checks** compare what the claim predicts with an independent oracle (a closed
form, scipy, QuTiP, sympy, a second solver) or with a quantity measured in a real run. The **controls** run a
deliberately wrong variant of the theory (the Itô drift left out, ħ off by a factor, α shifted by ¼, ...) through
the same pipeline and the same checks; a control is *rejected* when at least one of its checks fails. A claim is
reproduced only when every check passes and every control is rejected: an experiment whose checks also accept a
wrong theory cannot tell right from wrong, and says so (inconclusive). :func:`verdict_of` is that rule.

An outcome may also carry **findings**: statements about the spec itself (an inconsistency, a missing factor)
with the derivation the experiment ran to establish them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from matplotlib.figure import Figure

__all__ = [
    "Verdict",
    "Check",
    "Control",
    "Finding",
    "Claim",
    "Outcome",
    "Context",
    "Experiment",
    "Registry",
    "REGISTRY",
    "experiment",
    "verdict_of",
    "torch_threads",
]

SIZES = ("quick", "full")


class Verdict(StrEnum):
    """What a run of an experiment says about its claim.

    reproduced: every check passes and every control is rejected. inconclusive: every check passes but a control
    passes too (or there is no control), so the checks cannot tell the claim from a wrong variant. partly: some
    checks pass. not reproduced: none does. error: the experiment crashed or a dependency is missing; it says
    nothing about the claim.
    """

    REPRODUCED = "reproduced"
    INCONCLUSIVE = "inconclusive"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"
    ERROR = "error"


@dataclass(frozen=True)
class Check:
    """One measured number against its tolerance: passes when |value − expected| ≤ tolerance.

    ``expected`` may be None for one-sided checks, where ``value ≤ tolerance`` is required instead.
    """

    name: str
    value: float
    tolerance: float
    expected: float | None = None
    note: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        if self.expected is None:
            return self.value <= self.tolerance
        return abs(self.value - self.expected) <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        # plain Python types: checks computed with numpy give numpy scalars, which JSON does not know
        return {
            "name": self.name,
            "value": float(self.value),
            "expected": None if self.expected is None else float(self.expected),
            "tolerance": float(self.tolerance),
            "passed": bool(self.passed),
            "note": self.note,
        }


@dataclass(frozen=True)
class Control:
    """A deliberately wrong variant of the theory, run through the experiment's own pipeline.

    ``variant`` says in one sentence what is wrong (e.g. "walkers without the Itô drift ∂_ν D^{μν}"). ``checks``
    are the claim's checks evaluated on the variant's output; the control is *rejected* when at least one fails.
    A control without checks cannot be rejected.
    """

    name: str
    variant: str
    checks: list[Check]

    @property
    def rejected(self) -> bool:
        return any(not c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": self.variant,
            "rejected": bool(self.rejected),
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class Finding:
    """A statement about the spec that the experiment established, with the derivation it ran.

    ``derivation`` is the human-readable record (e.g. sympy's simplified expressions); ``checks`` are the
    numbers that establish the statement (e.g. a residual that simplifies to exactly 0, or a ratio of 2).
    """

    title: str
    statement: str
    derivation: str
    checks: list[Check]

    @property
    def established(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "statement": self.statement,
            "derivation": self.derivation,
            "established": bool(self.established),
            "checks": [c.as_dict() for c in self.checks],
        }


def verdict_of(checks: list[Check], controls: list[Control] | None = None) -> Verdict:
    """The verdict rule of :class:`Verdict`.

    All checks pass and every control is rejected: reproduced; all checks pass but some control passes too, or
    there is no control: inconclusive; some checks pass: partly; none (or no checks at all): not reproduced.
    """
    controls = controls or []
    passed = sum(c.passed for c in checks)
    if checks and passed == len(checks):
        if controls and all(c.rejected for c in controls):
            return Verdict.REPRODUCED
        return Verdict.INCONCLUSIVE
    if passed:
        return Verdict.PARTLY
    return Verdict.NOT_REPRODUCED


@dataclass(frozen=True)
class Claim:
    equations: tuple[str, ...]
    statement: str
    section: str


@dataclass
class Outcome:
    """What an experiment returns. ``notes`` are caveats a reader must see (e.g. "quick size: 2 seeds")."""

    checks: list[Check]
    controls: list[Control] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.checks, self.controls)

    def failed(self) -> list[str]:
        """Names of failing checks and of controls that were not rejected: what stands between this outcome and
        a reproduced verdict (for assertion messages)."""
        out = [
            f"check {c.name!r}: {c.value!r} vs {c.expected!r} ± {c.tolerance!r}" for c in self.checks if not c.passed
        ]
        out += [f"control {c.name!r} not rejected" for c in self.controls if not c.rejected]
        return out


@dataclass
class Context:
    """What an experiment gets: its size's parameters, a seed, and a progress callback (fraction in [0, 1])."""

    size: str
    params: dict[str, Any]
    seed: int = 0
    progress: Callable[[float], None] = lambda fraction: None


@dataclass(frozen=True)
class Experiment:
    name: str
    claim: Claim
    run: Callable[[Context], Outcome]
    sizes: dict[str, dict[str, Any]]

    def context(self, size: str, seed: int = 0, progress: Callable[[float], None] | None = None) -> Context:
        if size not in self.sizes:
            raise ValueError(f"unknown size {size!r} for experiment {self.name!r}: expected one of {SIZES}")
        return Context(size=size, params=dict(self.sizes[size]), seed=seed, progress=progress or (lambda f: None))


class Registry:
    """Experiments by name, in registration order."""

    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}

    def add(self, exp: Experiment) -> Experiment:
        if exp.name in self._experiments:
            raise ValueError(f"experiment {exp.name!r} is registered twice")
        missing = [s for s in SIZES if s not in exp.sizes]
        if missing:
            raise ValueError(f"experiment {exp.name!r} lacks sizes {missing}")
        self._experiments[exp.name] = exp
        return exp

    def __getitem__(self, name: str) -> Experiment:
        try:
            return self._experiments[name]
        except KeyError:
            known = ", ".join(self._experiments) or "none"
            raise KeyError(f"unknown experiment {name!r} (known: {known})") from None

    def __iter__(self) -> Iterator[Experiment]:
        return iter(self._experiments.values())

    def __len__(self) -> int:
        return len(self._experiments)

    def names(self) -> list[str]:
        return list(self._experiments)

    def select(self, names: list[str] | None) -> list[Experiment]:
        return list(self) if not names else [self[n] for n in names]


#: The registry behind `geodyn reproduce`; experiment modules add to it on import.
REGISTRY = Registry()


def experiment(
    name: str,
    *,
    equations: tuple[str, ...],
    statement: str,
    section: str,
    quick: dict[str, Any],
    full: dict[str, Any],
    registry: Registry | None = None,
) -> Callable[[Callable[[Context], Outcome]], Experiment]:
    """Register ``fn(ctx) -> Outcome`` as the experiment for one claim of the paper."""

    def wrap(fn: Callable[[Context], Outcome]) -> Experiment:
        exp = Experiment(
            name=name,
            claim=Claim(equations=equations, statement=statement, section=section),
            run=fn,
            sizes={"quick": quick, "full": full},
        )
        return (REGISTRY if registry is None else registry).add(exp)

    return wrap


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)`` and restore the previous setting afterwards (experiments with small
    tensors run on one thread; the runner and the tests check the setting is restored)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
