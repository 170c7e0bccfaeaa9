"""Experiments: each claim of the paper as code that returns checks, figures, data and a verdict.

An experiment declares its claim (equation numbers, one sentence, the paper section) and its sizes
("quick" runs in seconds for CI and the demo, "full" is the publication size). Its function receives a
:class:`Context` and returns an :class:`Outcome`; the verdict follows from the outcome's checks by
:func:`verdict_of`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from matplotlib.figure import Figure

__all__ = [
    "Verdict",
    "Check",
    "Claim",
    "Outcome",
    "Context",
    "Experiment",
    "Registry",
    "REGISTRY",
    "experiment",
    "verdict_of",
]

SIZES = ("quick", "full")


class Verdict(StrEnum):
    REPRODUCED = "reproduced"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"


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


def verdict_of(checks: list[Check]) -> Verdict:
    """All checks pass: reproduced; some: partly; none (or no checks at all): not reproduced."""
    passed = sum(c.passed for c in checks)
    if checks and passed == len(checks):
        return Verdict.REPRODUCED
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
    checks: list[Check]
    figures: dict[str, Figure] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.checks)


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
