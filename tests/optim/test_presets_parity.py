"""Exact limits of EQUATIONS.md §6: each preset steps like its reference optimizer (float64, ≥ 200 steps)."""

from __future__ import annotations

import warnings

import pytest
import torch

from geodyn.optim import presets

from helpers import train_pair

TOL = 1e-10  # float64 round-off over 200 steps; an algorithmic difference shows at ≥ 1e-6


def _adabelief(**kw):
    adabelief_pytorch = pytest.importorskip("adabelief_pytorch")

    def make(params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return adabelief_pytorch.AdaBelief(params, rectify=False, print_change_log=False, **kw)

    return make


CASES = {
    "sgd": (
        lambda p: presets.sgd(p, lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05),
    ),
    "sgd-momentum-wd": (
        lambda p: presets.sgd(p, lr=0.02, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=1e-3),
    ),
    "rmsprop": (
        lambda p: presets.rmsprop(p, lr=1e-3, alpha=0.95, eps=1e-6, weight_decay=1e-3),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.95, eps=1e-6, weight_decay=1e-3),
    ),
    "adam": (
        lambda p: presets.adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3, foreach=False),
    ),
    "adamw": (
        lambda p: presets.adamw(p, lr=3e-3, weight_decay=0.05),
        lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.05, foreach=False),
    ),
    "adabelief": (
        lambda p: presets.adabelief(p, lr=3e-3, eps=1e-12, weight_decay=1e-3, weight_decouple=False),
        _adabelief(lr=3e-3, eps=1e-12, weight_decay=1e-3, weight_decouple=False),
    ),
    "adabelief-decoupled": (
        lambda p: presets.adabelief(p, lr=3e-3, betas=(0.85, 0.995), weight_decay=0.05, weight_decouple=True),
        _adabelief(lr=3e-3, betas=(0.85, 0.995), weight_decay=0.05, weight_decouple=True),
    ),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "loop"])
@pytest.mark.parametrize("name", list(CASES))
def test_preset_matches_reference(name, foreach):
    ours, reference = CASES[name]
    deviation = train_pair(lambda p: _with_foreach(ours(p), foreach), reference, steps=200)
    assert deviation <= TOL, f"{name}: max |Δθ| = {deviation:.3e}"


def _with_foreach(opt, foreach):
    for group in opt.param_groups:
        group["foreach"] = foreach
    return opt


def test_parity_check_is_sensitive():
    """A wrong moment (central instead of raw) must be caught by the same harness."""
    deviation = train_pair(
        lambda p: presets.three_regime(p, lr=3e-3, eps=1e-8, zeta=0.0, moment="central", scale_free=False),
        lambda p: torch.optim.Adam(p, lr=3e-3, foreach=False),
        steps=50,
    )
    assert deviation > 1e-6
