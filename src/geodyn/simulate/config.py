"""The TOML configuration of ``geodyn simulate``: one pydantic model per simulator, validated before any work.

Every simulator shares the loss H̄ (``[loss]``) and, except evolution, the learning dynamics (``[learning]``: rate γ,
noise covariance κ, metric law g = f(κ) of (2.9)). A bad value is reported as one line naming the key and the value
(:class:`ConfigError`); unknown keys are errors too, so a typo is never silently ignored.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "ConfigError",
    "SimulationConfig",
    "LangevinConfig",
    "FokkerPlanckConfig",
    "SchrodingerConfig",
    "EvolutionConfig",
    "load_config",
    "parse_config",
]

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PerAxis = Finite | list[Finite]
Interval = Annotated[list[Finite], Field(min_length=2, max_length=2)]


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line naming the key and the bad value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Loss(_Section):
    """H̄(q), the average training loss (2.3) = the fitness landscape H = −log fitness (4.4) for evolution.

    ``quadratic``: ½ Σ_i k_i (q_i − c_i)²; ``double-well``: Σ_i h((q_i/w)² − 1)² + b q_i."""

    kind: Literal["quadratic", "double-well"] = "quadratic"
    curvature: Annotated[float, Field(gt=0, allow_inf_nan=False)] | list[Positive] = 1.0
    center: PerAxis = 0.0
    height: Positive = 1.0
    width: Positive = 1.0
    tilt: Finite = 0.0


class Learning(_Section):
    """The learning dynamics (2.5)–(2.9): rate γ, diagonal noise covariance κ_i(q) = κ_i (1 + c q_i²) (c =
    ``kappa_growth``; c > 0 makes D depend on q, so walkers need the Itô drift of (2.7)) and the metric law
    g = f(κ): ``power`` g = κ^α (2.9), ``interpolating`` g = ε + κ^{1/2} (6.4), ``three-regime`` ε + κ^{1/2} + ζκ (6.5).
    ``beta`` is β of Sec. 3 (Schrödinger only: ħ = 2√(γ/β), m = 1/γ, (3.12)–(3.13))."""

    gamma: Positive = 0.1
    kappa: Annotated[float, Field(gt=0, allow_inf_nan=False)] | list[Positive] = 1.0
    kappa_growth: NonNegative = 0.0
    law: Literal["power", "interpolating", "three-regime"] = "power"
    alpha: Annotated[float, Field(ge=0, le=2)] = 1.0
    eps: NonNegative = 1e-3
    zeta: NonNegative = 1.0
    beta: Positive = 10.0
    variant: Literal["A", "B"] = "A"


class Initial(_Section):
    """The starting state: a Gaussian of per-axis ``center`` and standard deviation ``width`` (walkers, densities,
    genomes); for ψ also a mean ``momentum`` (ψ ∝ exp(−(q−c)²/4σ² + i k (q−c)), k = momentum/ħ)."""

    center: PerAxis = 0.0
    width: Positive | list[Positive] = 0.5
    momentum: PerAxis = 0.0


class Walkers(_Section):
    count: Annotated[int, Field(ge=1)] = 2000
    dim: Annotated[int, Field(ge=1, le=64)] = 1
    steps: Annotated[int, Field(ge=1)] = 500
    integrator: Literal["discrete", "euler-maruyama"] = "discrete"
    dt: Positive = 1.0
    bins: Annotated[int, Field(ge=2)] = 60
    range: Interval | None = None


class Grid(_Section):
    domain: Interval | Annotated[list[Interval], Field(min_length=1, max_length=2)] = [-3.0, 3.0]
    cells: Annotated[int, Field(ge=4)] | Annotated[list[Annotated[int, Field(ge=4)]], Field(min_length=1)] = 128
    boundary: Literal["no-flux", "periodic"] = "no-flux"


class Time(_Section):
    t_final: Positive = 10.0
    dt: Positive = 0.05
    scheme: Literal["backward_euler", "crank_nicolson"] = "backward_euler"


class QuantumTime(_Section):
    t_final: Positive = 2.0
    dt: Positive = 0.01
    method: Literal["split-step", "crank-nicolson"] = "split-step"


class PopulationSpec(_Section):
    size: Annotated[int, Field(ge=1)] = 2000
    dim: Annotated[int, Field(ge=1, le=64)] = 1
    steps: Annotated[int, Field(ge=1)] = 500
    jump: Positive = 0.1
    acceptance: Literal["sigmoid", "metropolis"] = "sigmoid"
    beta_s: NonNegative = 4.0
    reproduction: Literal["none", "moran", "wright-fisher"] = "none"
    selection: NonNegative = 1.0
    bins: Annotated[int, Field(ge=2)] = 60
    range: Interval | None = None


class _Common(_Section):
    seed: int = 0
    frames: Annotated[int, Field(ge=2, le=500)] = 40
    loss: Loss = Loss()
    initial: Initial = Initial()

    def _check_axes(self, dim: int) -> None:
        for key, value in (
            ("loss.curvature", self.loss.curvature),
            ("loss.center", self.loss.center),
            ("initial.center", self.initial.center),
            ("initial.width", self.initial.width),
            ("initial.momentum", self.initial.momentum),
            *((("learning.kappa", self.learning.kappa),) if hasattr(self, "learning") else ()),
        ):
            if isinstance(value, list) and len(value) != dim:
                raise ValueError(f"{key} = {value!r} has {len(value)} entries for a {dim}-D problem")


class LangevinConfig(_Common):
    """Walkers of the discrete learning dynamics (2.5)/(2.6) or the SDE of (2.7)."""

    simulator: Literal["langevin"]
    learning: Learning = Learning()
    walkers: Walkers = Walkers()

    @property
    def dim(self) -> int:
        return self.walkers.dim

    @model_validator(mode="after")
    def _axes(self):
        self._check_axes(self.dim)
        if self.walkers.integrator == "discrete" and self.walkers.dt != 1.0:
            raise ValueError(f"walkers.dt = {self.walkers.dt!r}: the discrete dynamics (2.5) has dt = 1 per step")
        return self


class _OnGrid(_Common):
    learning: Learning = Learning()
    grid: Grid = Grid()

    @property
    def dim(self) -> int:
        d = self.grid.domain
        return 1 if not isinstance(d[0], list) else len(d)

    def domain(self) -> list[tuple[float, float]]:
        d = self.grid.domain
        return [tuple(d)] if not isinstance(d[0], list) else [tuple(a) for a in d]

    def cells(self) -> list[int]:
        c = self.grid.cells
        return [c] * self.dim if isinstance(c, int) else list(c)

    def _check_grid(self, max_dim: int) -> None:
        if self.dim > max_dim:
            raise ValueError(f"grid.domain = {self.grid.domain!r}: {self.dim}-D, at most {max_dim}-D is supported")
        for lo, hi in self.domain():
            if not hi > lo:
                raise ValueError(f"grid.domain = {self.grid.domain!r}: each interval needs lower < upper")
        if len(self.cells()) != self.dim:
            raise ValueError(f"grid.cells = {self.grid.cells!r} does not match the {self.dim}-D grid.domain")
        self._check_axes(self.dim)


class FokkerPlanckConfig(_OnGrid):
    """The density p(q, t) of (2.7) on a 1-D or 2-D grid (finite volumes)."""

    simulator: Literal["fokker-planck"]
    time: Time = Time()

    @model_validator(mode="after")
    def _valid(self):
        self._check_grid(2)
        return self


class SchrodingerConfig(_OnGrid):
    """ψ of (3.11) with ħ, m (3.12)–(3.13), V (3.6) and g derived from the learning parameters (periodic grid)."""

    simulator: Literal["schrodinger"]
    time: QuantumTime = QuantumTime()

    @model_validator(mode="after")
    def _valid(self):
        self._check_grid(2)
        isotropic = not isinstance(self.learning.kappa, list) or len(set(self.learning.kappa)) == 1
        if self.time.method == "split-step" and (self.learning.kappa_growth > 0 or not isotropic):
            raise ValueError(
                f"time.method = 'split-step' needs a constant isotropic metric (learning.kappa one number, "
                f"kappa_growth = 0), got kappa = {self.learning.kappa!r}, kappa_growth = "
                f"{self.learning.kappa_growth!r}; use method = 'crank-nicolson'"
            )
        return self


class EvolutionConfig(_Common):
    """A population of continuous genomes under jump × sigmoid acceptance (4.1)–(4.6), optional reproduction."""

    simulator: Literal["evolution"]
    population: PopulationSpec = PopulationSpec()

    @property
    def dim(self) -> int:
        return self.population.dim

    @model_validator(mode="after")
    def _axes(self):
        self._check_axes(self.dim)
        return self


SimulationConfig = Annotated[
    LangevinConfig | FokkerPlanckConfig | SchrodingerConfig | EvolutionConfig, Field(discriminator="simulator")
]
_ADAPTER: TypeAdapter = TypeAdapter(SimulationConfig)
SIMULATORS = ("langevin", "fokker-planck", "schrodinger", "evolution")


def _lookup(data: Any, loc: tuple) -> Any:
    for key in loc:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _one_line(exc: ValidationError, data: dict) -> str:
    """The first error as 'key = value: reason' (the discriminator tag pydantic puts first is dropped)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if loc and loc[0] in SIMULATORS:
        loc = loc[1:]
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "float", "list"))))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid" or (err["type"] == "union_tag_not_found"):
        return f"simulator = {data.get('simulator')!r}: must be one of {', '.join(map(repr, SIMULATORS))}"
    if err["type"] == "value_error":  # our own messages already name the key and the value
        return msg
    key = ".".join(str(p) for p in loc) or "config"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (a typo?)"
    value = _lookup(data, loc)
    return f"{key} = {value!r}: {msg}"


def parse_config(data: dict) -> LangevinConfig | FokkerPlanckConfig | SchrodingerConfig | EvolutionConfig:
    """Validate a config dictionary (parsed TOML); raises :class:`ConfigError` with a one-line message."""
    if not isinstance(data, dict) or "simulator" not in data:
        raise ConfigError(f"simulator: missing; set simulator = one of {', '.join(map(repr, SIMULATORS))}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, data)) from None


def load_config(path: str | Path):
    """Read and validate a TOML config file; :class:`ConfigError` (one line, naming the key) when it cannot run."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from None
    return parse_config(data)


def resolved(config) -> dict:
    """The config with every default filled in, as plain TOML-ready data (None values left out)."""

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, float) and math.isinf(v):
            return str(v)
        return v

    return clean(config.model_dump(mode="python"))
