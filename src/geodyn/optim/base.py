"""What every covariant-gradient-descent optimizer shares: the torch.optim contract around one group step.

Subclasses implement :meth:`CovariantOptimizer._step_group` and, for extra settings, :meth:`_validate`. The base
evaluates the closure, refuses or skips non-finite gradients before anything is touched, and validates every
parameter group (also those added later).

State is plain data: :meth:`CovariantOptimizer.state_dict` stores each group's metric law as its spec
(:meth:`geodyn.metric.MetricLaw.spec`, as a JSON string) and :meth:`~CovariantOptimizer.load_state_dict` rebuilds it, so
``torch.load`` with its defaults (``weights_only=True``) reads a checkpoint; state dicts holding the law objects
(written before specs existed) load too. Copies and pickles carry the optimizer's own attributes.

Eager steps decide finiteness before anything is touched (one multi-tensor norm), or, where the group's step can
do it itself (``CGD(compiled=True)``, :meth:`CovariantOptimizer._checks_in_step`), inside the compiled program that
updates: an on-device flag masks the update, and the host reads that flag once after it (a memory read on the
CPU). Either way "raise" raises from the same ``step()`` call and a refused step changes nothing
(docs/optimizer-contract.md, "Non-finite gradients").

Under ``torch.compile(opt.step)`` the finiteness check runs on tensors (no host sync): a group whose gradients
hold NaN or inf keeps its parameters and state by a masked update, whatever its ``nonfinite`` policy (raising
needs the host to look at the flag); eager steps keep the raise/skip/ignore policies.

Under torch.distributed the non-finite decision is the same on every rank (:mod:`geodyn.optim.distributed`):
flags of DTensor gradients are all-reduced over their device meshes, those of plain tensors over
``nonfinite_group`` when one is given; otherwise (one process, or DistributedDataParallel, whose all-reduced
gradients carry a NaN of any rank to all) each rank decides alone and nothing is communicated.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from geodyn.metric import Interpolating, MetricLaw, metric_from_spec
from geodyn.noise import MOMENTS
from geodyn.optim.distributed import any_across_ranks, device_meshes, has_dtensor, local_tensor

__all__ = [
    "CovariantOptimizer",
    "NonFiniteGradientError",
    "all_finite",
    "effective_gradient",
    "group_options",
    "validate_hyperparameters",
]

NONFINITE_POLICIES = ("raise", "skip", "ignore")


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or inf; the optimizer left parameters and state untouched."""


def _as_float(value: Any) -> float:
    return value.item() if isinstance(value, Tensor) else float(value)


def _number(name: str, value: Any) -> float:
    """``value`` as a float, or ValueError naming it (a tensor must be a real 0-dim tensor, as for schedulers)."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or value.is_complex():
            raise ValueError(f"invalid {name}={value!r}: Tensor {name} must be 1-element, real and 0-dim")
        return value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numbers.Real: numpy scalars too
        raise ValueError(f"invalid {name}={value!r}: must be a number")
    return float(value)


def _flag(group: dict[str, Any], name: str, allow_none: bool = False) -> None:
    value = group.get(name, False)
    if not (isinstance(value, bool) or (allow_none and value is None)):
        raise ValueError(f"invalid {name}={value!r}: must be True or False" + (" or None" if allow_none else ""))


def validate_hyperparameters(group: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad hyperparameter of a parameter group."""
    lr = _number("lr", group["lr"])
    if not (math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"invalid learning rate lr={lr!r}: must be a finite number >= 0")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"invalid betas={betas!r}: need two values (beta1, beta2)")
    for i, beta in enumerate(betas):
        b = _number(f"betas[{i}]", beta)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"invalid betas[{i}]={b!r}: must be in [0, 1)")
    wd = _number("weight_decay", group["weight_decay"])
    if not (math.isfinite(wd) and wd >= 0.0):
        raise ValueError(f"invalid weight_decay={wd!r}: must be a finite number >= 0")
    eps_inside = _number("eps_inside", group.get("eps_inside", 0.0))
    if not (math.isfinite(eps_inside) and eps_inside >= 0.0):
        raise ValueError(f"invalid eps_inside={eps_inside!r}: must be a finite number >= 0")
    for name in ("maximize", "bias_correction", "decoupled_weight_decay"):
        _flag(group, name)
    _flag(group, "foreach", allow_none=True)
    _flag(group, "compiled", allow_none=True)
    if group["moment"] not in MOMENTS:
        raise ValueError(f"unknown moment={group['moment']!r}: expected one of {', '.join(MOMENTS)}")
    if not isinstance(group["metric"], MetricLaw):
        raise ValueError(f"invalid metric={group['metric']!r}: expected a geodyn.metric.MetricLaw")
    if group["nonfinite"] not in NONFINITE_POLICIES:
        raise ValueError(f"unknown nonfinite={group['nonfinite']!r}: expected one of {', '.join(NONFINITE_POLICIES)}")


def all_finite(grads: Sequence[Tensor]) -> bool:
    """True when no gradient holds NaN or inf, with a single host sync.

    The fast test is the L2 norm of each tensor (the cheapest multi-tensor reduction here: ~0.4 ms for 1 M
    float32 values against ~2–15 ms for the inf-norm); NaN and inf propagate into it. A norm that overflows on
    huge but finite values is confirmed elementwise before it is reported.
    """
    if not grads:
        return True
    grads = list(grads)
    norms = torch._foreach_norm(grads, 2)
    if bool(torch.stack([n.to(norms[0].device, torch.float32) for n in norms]).isfinite().all()):
        return True
    return all(bool(g.isfinite().all()) for g in grads)


def effective_gradient(
    param: Tensor, grad: Tensor, *, lr: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool
) -> Tensor:
    """−∇ for ``maximize``; L2 decay added to the gradient, or decoupled decay applied to ``param`` in place."""
    if maximize:
        grad = -grad
    if weight_decay:
        if decoupled_weight_decay:
            param.mul_(1.0 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    return grad


def group_options(group: dict[str, Any]) -> dict[str, Any]:
    """The settings of a group as plain Python values, as the step functions take them.

    While dynamo traces the step a tensor lr stays a tensor: ``.item()`` would break the graph and a Python
    float would be specialised (one recompile per scheduler step).
    """
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    return dict(
        lr=lr if isinstance(lr, Tensor) and torch.compiler.is_compiling() else _as_float(lr),
        beta1=_as_float(beta1),
        beta2=_as_float(beta2),
        metric=group["metric"],
        moment=group["moment"],
        weight_decay=_as_float(group["weight_decay"]),
        decoupled_weight_decay=group["decoupled_weight_decay"],
        bias_correction=group["bias_correction"],
        maximize=group["maximize"],
    )


def _metric_spec(metric: Any) -> Any:
    """The law's spec as a JSON string: one leaf for torch.distributed.checkpoint, which would flatten a dict into
    keys that must then match the loading optimizer's law (and floats round-trip exactly through JSON)."""
    return json.dumps(metric.spec(), sort_keys=True) if isinstance(metric, MetricLaw) else metric


def _rebuild_metric(saved: Any, current: Any, index: int) -> Any:
    """The law of a loaded group: rebuilt from its spec; a custom law is matched by name with the current one."""
    if isinstance(saved, str):
        try:
            saved = json.loads(saved)
        except json.JSONDecodeError:
            raise ValueError(f"parameter group {index}: invalid metric spec {saved!r}: not JSON") from None
    if not isinstance(saved, dict):
        return saved  # a law object (state dicts written before specs) or a bad value the validation names
    if saved.get("kind") == "custom":
        if isinstance(current, MetricLaw) and current.spec() == saved:
            return current
        raise ValueError(
            f"parameter group {index}: the saved metric {saved!r} is a custom law, which a state dict cannot "
            f"rebuild; build the optimizer with that law (it has {current!r})"
        )
    return metric_from_spec(saved)


def _loaded_step(value: Any, index: Any) -> Tensor:
    """A loaded ``step`` as the float32 0-dim tensor the steps update in place (a Python number is converted)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"invalid step={value!r} in the state of parameter {index}: must be one number")
        return value
    number = _number(f"step (state of parameter {index})", value)
    if not (math.isfinite(number) and number >= 0 and number == int(number)):
        raise ValueError(f"invalid step={value!r} in the state of parameter {index}: must be an integer >= 0")
    return torch.tensor(number, dtype=torch.float32)


class CovariantOptimizer(Optimizer):
    """Base of :class:`CGD`, :class:`KronCGD` and :class:`FullCGD`."""

    #: Whether complex parameters are stepped (as their ``view_as_real``); others refuse them at construction.
    supports_complex: bool = False
    #: Whether the step may be traced by dynamo under ``torch.compile(opt.step)``; if not, it runs eagerly there.
    traceable_step: bool = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]):
        defaults = dict(defaults)
        # A process group is runtime wiring, not a hyperparameter: kept out of param_groups (and state_dict).
        self.nonfinite_group = defaults.pop("nonfinite_group", None)
        if defaults.get("metric") is None:
            defaults["metric"] = Interpolating(1e-8)
        if isinstance(defaults["betas"], list):
            defaults["betas"] = tuple(defaults["betas"])
        self._validate(defaults)
        self.skipped_steps = 0
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        validate_hyperparameters(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._validate(group)
        if not self.supports_complex:
            for i, p in enumerate(group["params"]):
                if p.is_complex():
                    raise ValueError(
                        f"{type(self).__name__} does not support complex parameters: parameter {i} of group "
                        f"{len(self.param_groups) - 1} has dtype {p.dtype} (shape {tuple(p.shape)}); optimise "
                        "torch.view_as_real(p) instead"
                    )

    # -- copies and checkpoints ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["nonfinite_group"] = self.nonfinite_group
        state["skipped_steps"] = self.skipped_steps
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also called by torch's load_state_dict with only state and param_groups: keep what is not given.
        state = dict(state)
        for name, default in (("nonfinite_group", None), ("skipped_steps", 0)):
            if name in state or name not in self.__dict__:
                setattr(self, name, state.pop(name, default))
        super().__setstate__(state)
        for group in self.param_groups:  # settings added after an object was pickled take their legacy values
            for key, value in {**self._own_defaults(), **self.legacy_settings}.items():
                group.setdefault(key, value)

    #: Settings added after a release, with the values under which a group saved before then steps as it did
    #: (they take precedence over the constructor's defaults when a saved group lacks them).
    legacy_settings: dict[str, Any] = {}

    def _own_defaults(self) -> dict[str, Any]:
        # torch's __setstate__ adds "differentiable" to the defaults; no geodyn group has that setting.
        return {k: v for k, v in self.defaults.items() if k != "differentiable"}

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict with each group's metric law as its spec, a JSON string (``weights_only`` loads it)."""
        saved = super().state_dict()
        saved["param_groups"] = [dict(g, metric=_metric_spec(g.get("metric"))) for g in saved["param_groups"]]
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of :meth:`state_dict` (or one holding law objects, as earlier releases wrote).

        Every group is validated before anything is loaded; a ``step`` saved as a Python number becomes a tensor.
        """
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if not isinstance(groups, list):
            raise ValueError(f"invalid optimizer state dict: param_groups={groups!r} is not a list")
        rebuilt = []
        for index, saved in enumerate(groups):
            current = self.param_groups[index]["metric"] if index < len(self.param_groups) else None
            # Settings missing from an older state dict take the optimizer's defaults, as torch's optimizers do.
            metric = _rebuild_metric(saved.get("metric", self.defaults["metric"]), current, index)
            group = {**self._own_defaults(), **self.legacy_settings, **saved, "metric": metric}
            if "betas" in group and isinstance(group["betas"], list):
                group["betas"] = tuple(group["betas"])
            self._validate(group)
            rebuilt.append(group)
        states = state_dict.get("state", {})
        if not isinstance(states, dict):
            raise ValueError(f"invalid optimizer state dict: state={states!r} is not a dict")
        states = {
            key: dict(value, step=_loaded_step(value["step"], key))
            if isinstance(value, dict) and "step" in value
            else value
            for key, value in states.items()
        }
        super().load_state_dict(dict(state_dict, param_groups=rebuilt, state=states))

    # -- the step --------------------------------------------------------------------------------------
    def _step_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], check: bool = False
    ) -> bool | None:
        """Step one group; with ``check`` (only if :meth:`_checks_in_step`) return False, touching nothing, when a
        gradient is not finite."""
        raise NotImplementedError

    def _init_group_state(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Create missing state before a traced step (so that the traced code never takes the creating branch)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not torch.compiler.is_compiling():
            self._eager_step()
        elif self.traceable_step:
            self._traced_step()
        else:
            _eager_step(self)
        return loss

    def _eager_step(self) -> None:
        candidates = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            candidates.append((index, group, params, grads))
        if (
            len(candidates) == 1
            and candidates[0][1]["nonfinite"] != "ignore"
            and self.nonfinite_group is None
            and not has_dtensor(candidates[0][3])
            and self._checks_in_step(*candidates[0][1:])
        ):
            # One group to step and its step decides finiteness itself, on device, in the pass that updates
            # (masked): refusing it leaves everything unchanged, as the check below would.
            index, group, params, grads = candidates[0]
            if not self._step_group(group, params, grads, check=True):
                self._refuse(index, group)
            return
        checked = [grads for _, group, _, grads in candidates if group["nonfinite"] != "ignore"]
        flags = iter(self._nonfinite_flags(checked))
        work = []
        for index, group, params, grads in candidates:
            if group["nonfinite"] != "ignore" and next(flags):
                self._refuse(index, group)
                continue
            work.append((group, params, grads))
        for group, params, grads in work:
            self._step_group(group, params, grads)

    def _refuse(self, index: int, group: dict[str, Any]) -> None:
        """A group's step was refused for a non-finite gradient (nothing was touched): raise, or count a skip."""
        if group["nonfinite"] == "raise":
            raise NonFiniteGradientError(
                f"non-finite gradient (NaN or inf) in parameter group {index}; parameters and optimizer "
                "state were left unchanged (pass nonfinite='skip' to skip such steps)"
            )
        self.skipped_steps += 1

    def _checks_in_step(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> bool:
        """Whether ``_step_group(..., check=True)`` decides finiteness itself (and returns False to refuse).

        Asked only for a single group to step whose ranks need not agree (no DTensor gradients, no
        ``nonfinite_group``: those take the all-reduced check of :meth:`_nonfinite_flags`).
        """
        return False

    def _traced_step(self) -> None:
        """The step as dynamo traces it: the finiteness flag stays a tensor and masks the update (no host sync)."""
        _create_states(self)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["nonfinite"] == "ignore":
                self._step_group(group, params, grads)
            else:
                self._masked_step_group(group, params, grads)

    def _masked_step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        finite = torch.stack([g.isfinite().all() for g in grads]).all()
        before = [p.clone() for p in params]
        states = [[(v, v.clone()) for v in self.state[p].values() if isinstance(v, Tensor)] for p in params]
        self._step_group(group, params, grads)
        for p, old, pairs in zip(params, before, states, strict=True):
            p.copy_(torch.where(finite, p, old))
            for value, saved in pairs:
                value.copy_(torch.where(finite, value, saved))

    def _nonfinite_flags(self, grad_lists: list[list[Tensor]]) -> list[bool]:
        """Per gradient list: does it hold NaN or inf on any rank that shares its parameters?

        Each rank tests its local shards; the flags are then all-reduced over the device meshes of DTensor
        gradients (a NaN in one shard stops all ranks) and over ``nonfinite_group`` if set. Without either no
        collective is issued, so the single-process step pays only a type check.
        """
        flags: list[bool] = []
        meshes: list[Any] = []
        device = None
        for grads in grad_lists:
            if has_dtensor(grads):
                meshes += [m for m in device_meshes(grads) if not any(m is k or m == k for k in meshes)]
                grads = [local_tensor(g) for g in grads]
            if device is None:
                device = grads[0].device
            flags.append(not all_finite(grads))
        if meshes or (flags and self.nonfinite_group is not None):
            flags = any_across_ranks(flags, meshes=meshes, group=self.nonfinite_group, device=device)
        return flags


@torch._disable_dynamo
def _create_states(opt: CovariantOptimizer) -> None:
    for group in opt.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if params:
            opt._init_group_state(group, params)


@torch._disable_dynamo
def _eager_step(opt: CovariantOptimizer) -> None:
    """A step dynamo cannot trace without host syncs (eigendecompositions, refresh schedules) runs eagerly."""
    opt._eager_step()
