"""Regime maps on planted spectra with known band edges (EQUATIONS.md (6.6)–(6.9))."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geodyn.analysis import regime_map
from geodyn.metric import ThreeRegime
from geodyn.noise import gradient_noise


def test_planted_spectrum_labels_follow_band_edges():
    eps, zeta = 1e-4, 1e2  # slow below ε² = 1e-8, fast above ζ⁻² = 1e-4
    lam = torch.logspace(-12, 0, 121, dtype=torch.float64)  # 10 points per decade, edges on the grid
    rmap = regime_map(lam, ThreeRegime(eps, zeta))
    labels = rmap.labels["all"]
    log = lam.log10()
    assert (labels[log < -8 - 1e-9] == 0).all()
    assert (labels[(log > -8 + 1e-9) & (log < -4 - 1e-9)] == 1).all()
    assert (labels[log > -4 + 1e-9] == 2).all()
    frac = rmap.fractions()["all"]
    assert frac["slow"] == pytest.approx(41 / 121, abs=1 / 121)  # [-12, -8]: 41 points, the edge may go either way
    assert frac["intermediate"] == pytest.approx(39 / 121, abs=2 / 121)
    assert sum(frac.values()) == pytest.approx(1.0)


def test_no_intermediate_variables_when_eps_zeta_large():
    lam = torch.logspace(-12, 4, 200, dtype=torch.float64)
    frac = regime_map(lam, ThreeRegime(1.0, 10.0)).fractions()["all"]  # εζ = 10 ≫ 1, (6.6)
    assert frac["intermediate"] == 0.0
    assert frac["slow"] > 0 and frac["fast"] > 0


def test_per_layer_fractions_and_batch_scaling():
    spectra = {"a": torch.full((10,), 1e-6, dtype=torch.float64), "b": torch.full((30,), 1.0, dtype=torch.float64)}
    law = ThreeRegime(1e-4, 1e2)
    frac = regime_map(spectra, law).fractions()
    assert frac["a"]["intermediate"] == 1.0 and frac["b"]["fast"] == 1.0
    assert frac["all"]["fast"] == pytest.approx(0.75)
    # A minibatch of 1e6 examples divides κ by 1e6: the fast layer becomes intermediate.
    assert regime_map(spectra, law, batch_size=10**6).fractions()["b"]["intermediate"] == 1.0


@pytest.mark.parametrize("by", ["parameter", "eigen"])
def test_regime_map_of_a_model(by):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    noise = gradient_noise(model, lambda out, t: 0.5 * (out - t).pow(2).sum(), x, y)
    rmap = regime_map(noise, ThreeRegime(1e-3, 1.0), by=by)
    assert list(rmap.labels) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sizes = {name: lab.numel() for name, lab in rmap.labels.items()}
    if by == "parameter":
        assert sizes == {"0.weight": 24, "0.bias": 6, "2.weight": 12, "2.bias": 2}
    else:
        assert all(n <= 16 for n in sizes.values())
    fig = rmap.figure()
    assert len(fig.axes) == 2
    assert rmap.table().row_count == 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="by='rows'"):
        regime_map(torch.ones(3), ThreeRegime(1e-3, 1.0), by="rows")
    with pytest.raises(ValueError, match="batch_size"):
        regime_map(torch.ones(3), ThreeRegime(1e-3, 1.0), batch_size=0)


def test_band_report_separates_the_band_from_the_labels():
    """εζ = 1e-2: above the 0.9-share threshold ((1−h)/(2h))² = 1/324 = 3.09e-3, below 1. The (6.9) band is empty
    while the √λ term is the largest term for λ in (ε², ζ⁻²) = (1e-8, 1e-4), the interval of the labels."""
    lam = torch.logspace(-12, 0, 121, dtype=torch.float64)
    report = regime_map(lam, ThreeRegime(1e-4, 1e2)).band_report()
    assert report["share"] == 0.9 and report["interval"] is None and report["fraction_in_band"] == 0.0
    assert report["intermediate_interval"] == pytest.approx([1e-8, 1e-4], rel=1e-12)
    assert "εζ ≤ 0.00309" in report["note"] and "largest" in report["note"]


def test_band_report_counts_variables_in_a_nonempty_band():
    # εζ = 1e-6: the band at h = 0.9 tends to [(h/(1−h))² ε², ((1−h)/h)² ζ⁻²] = [8.1e-5, 1.2346e4] as εζ → 0
    # (metric.band docstring); the exact roots differ from these limits by a relative O((h/(1−h))² εζ) = 8e-5·… ≤ 1e-3
    law = ThreeRegime(1e-3, 1e-3)
    lam = torch.tensor([1e-8, 1e-3, 1e2, 1e5], dtype=torch.float64)
    report = regime_map(lam, law).band_report()
    lo, hi = report["interval"]
    assert lo == pytest.approx(81e-6, rel=1e-3) and hi == pytest.approx(1e6 / 81, rel=1e-3)
    assert report["fraction_in_band"] == 0.5  # 1e-3 and 1e2 inside, 1e-8 and 1e5 outside


def test_axis_label_names_what_is_plotted():
    lam = torch.logspace(-8, 0, 20, dtype=torch.float64)
    assert regime_map(lam, ThreeRegime(1e-4, 1e2), batch_size=64).axis_label() == "log₁₀ κ_ii/b, b = 64"
    assert regime_map(lam, ThreeRegime(1e-4, 1e2), by="parameter").axis_label() == "log₁₀ κ_ii"
    fig = regime_map(lam, ThreeRegime(1e-4, 1e2), batch_size=8).figure()
    assert fig.axes[0].get_xlabel() == "log₁₀ κ_ii/b, b = 8"


def test_print_shows_the_table_as_text():
    text = str(regime_map(torch.logspace(-8, 0, 20, dtype=torch.float64), ThreeRegime(1e-4, 1e2)))
    assert "intermediate" in text and "rich" not in text and "all" in text
