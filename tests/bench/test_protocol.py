"""The sounder protocol: data roles, held targets, grid extension at an edge, paired test, regime shares."""

import math
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from geodyn.bench import OPTIMIZERS, TASKS
from geodyn.bench.cell import Cell, CellResult, run_cell
from geodyn.bench.protocol import HOLD, MAX_EXTENSIONS, TUNING_SEED, extend_lr, lr_grid, split_of
from geodyn.bench.regimes import regime_shares
from geodyn.bench.runner import tuning_state
from geodyn.bench.scoring import first_reached, sign_test, steps_to_target
from geodyn.bench.tasks import _digits, held_out_role
from geodyn.optim import presets


def test_a_target_must_hold_for_consecutive_evaluations():
    values = [1.0, 0.01, 1.0, 0.02, 0.03, 0.04, 0.5]
    assert first_reached(values, 0.05, "min") == 1  # a lucky dip is the first crossing
    assert first_reached(values, 0.05, "min", hold=3) == 3  # but the target holds only from index 3 on
    assert first_reached(values, 0.05, "min", hold=4) is None
    assert steps_to_target([0, 10, 20, 30, 40, 50, 60], values, 0.05, "min", hold=3) == 30.0
    assert first_reached([0.9, 0.97, 0.98, 0.99], 0.97, "max", hold=3) == 1
    with pytest.raises(ValueError, match="hold"):
        first_reached(values, 0.05, "min", hold=0)


def test_run_cell_scores_the_first_of_the_held_evaluations(toy_task):
    r = run_cell(Cell(toy_task, "adamw", 0.1, 1, "quick"))
    assert r.status == "reached"
    target = TASKS[toy_task].target_for("quick")
    assert r.steps_to_target == steps_to_target(r.steps, r.values, target, "min", hold=HOLD)
    # the curve stops at the HOLD-th holding evaluation, not at the first crossing
    i = r.steps.index(int(r.steps_to_target))
    assert len(r.steps) == i + HOLD and all(v <= target for v in r.values[i:])


def test_tuning_seed_reads_validation_and_scoring_seeds_read_test(toy_task, monkeypatch):
    from geodyn.bench import tasks as bench_tasks

    seen = []
    task = bench_tasks.TASKS[toy_task]
    original = task.build

    def build(seed, device="cpu"):
        problem = original(seed)
        evaluate = problem.evaluate

        def spy(split="validation"):
            seen.append(split)
            return evaluate(split)

        problem.evaluate = spy
        return problem

    import dataclasses

    monkeypatch.setitem(bench_tasks.TASKS, toy_task, dataclasses.replace(task, build=build))
    run_cell(Cell(toy_task, "adamw", 0.01, TUNING_SEED, "quick"))
    assert seen and set(seen) == {"validation"}
    seen.clear()
    run_cell(Cell(toy_task, "adamw", 0.01, 1, "quick"))
    assert seen and set(seen) == {"test"}
    assert split_of(TUNING_SEED) == "validation" and split_of(3) == "test"


def _fake(task, opt, lr, h, steps):
    cell = Cell(task, opt, lr, TUNING_SEED, "quick", h)
    return CellResult(cell, "reached" if math.isfinite(steps) else "budget", [0], [0.0], [1.0], steps_to_target=steps)


def test_a_best_trial_on_the_grid_edge_extends_the_grid_for_that_optimizer(toy_task):
    grid, values = lr_grid("quick"), OPTIMIZERS["adamw"].values
    # The larger the lr the fewer steps: the best trial sits on the top edge every time.
    cells = {}

    def add(lrs):
        for lr in lrs:
            for h in values:
                r = _fake(toy_task, "adamw", lr, h, 1000.0 / lr)
                cells[r.cell.key] = r

    add(grid)
    state = tuning_state(cells, toy_task, "adamw", "quick")
    assert state.best is None and {c.lr for c in state.missing} == {extend_lr(grid[-1], 1)} == {0.316}
    assert len(state.missing) == len(values)  # the new learning rate with every value of the hyperparameter
    add([0.316])
    add([1.0])
    state = tuning_state(cells, toy_task, "adamw", "quick")
    assert state.best.cell.lr == 1.0 and state.extensions == MAX_EXTENSIONS and state.on_edge  # flagged
    # an interior best point: no extension, not flagged
    inner = {k: r for k, r in cells.items() if r.cell.lr in grid}
    for r in inner.values():
        r.steps_to_target = abs(math.log10(r.cell.lr) + 2.0) * 100 + 10  # fewest steps at lr 0.01
    state = tuning_state(inner, toy_task, "adamw", "quick")
    assert state.best.cell.lr == 0.01 and state.extensions == 0 and not state.on_edge
    # the bottom edge extends downwards
    for r in inner.values():
        r.steps_to_target = r.cell.lr * 1e4
    assert {c.lr for c in tuning_state(inner, toy_task, "adamw", "quick").missing} == {extend_lr(grid[0], -1)}


def test_sign_test_by_hand():
    t = sign_test([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert (t.wins, t.losses, t.ties) == (5, 0, 0) and t.p_value == pytest.approx(2 / 32)
    t = sign_test([math.inf, 1, 5, 7, 9], [math.inf, 2, 4, 8, 10])  # ∞ ties with ∞; 3 wins, 1 loss
    assert (t.wins, t.losses, t.ties) == (3, 1, 1) and t.p_value == pytest.approx(2 * (1 + 4) / 16)
    assert sign_test([3.0, math.inf], [math.inf, 2.0]).p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        sign_test([1.0], [1.0, 2.0])


def test_digits_are_standardised_with_training_statistics_only():
    from sklearn.datasets import load_digits

    raw = torch.tensor(load_digits().data, dtype=torch.float64)
    perm = torch.randperm(len(raw), generator=torch.Generator().manual_seed(0))
    n = len(raw) // 5
    train, val = raw[perm[2 * n :]], raw[perm[n : 2 * n]]
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    splits = _digits()
    assert {k: len(v[0]) for k, v in splits.items()} == {"test": n, "validation": n, "train": len(raw) - 2 * n}
    np.testing.assert_allclose(splits["validation"][0].double().numpy(), ((val - mean) / std).numpy(), atol=1e-5)
    live = train.std(0) > 0
    np.testing.assert_allclose(splits["train"][0].double().mean(0)[live].numpy(), 0.0, atol=1e-5)
    # the validation split was not used: its own mean is not 0 (it would be if it had been standardised alone)
    assert splits["validation"][0][:, live].double().mean(0).abs().max() > 1e-3


def test_byte_lm_holds_out_whole_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    roles = {held_out_role(p.relative_to(root).as_posix()) for p in list(root.glob("*.py"))[:200]}
    assert roles == {"train", "validation", "test"}
    assert held_out_role("json/decoder.py") == held_out_role("json/decoder.py")  # stable across processes (crc32)
    counts = {k: 0 for k in ("train", "validation", "test")}
    for p in root.rglob("*.py"):
        counts[held_out_role(p.relative_to(root).as_posix())] += 1
    total = sum(counts.values())
    # crc32 mod 10 is close to uniform: each held-out role gets 10 % ± 5 binomial standard deviations
    sd = math.sqrt(total * 0.1 * 0.9)
    assert all(abs(counts[k] - 0.1 * total) < 5 * sd for k in ("validation", "test"))


def test_byte_lm_full_size_is_within_the_declared_range():
    from geodyn.bench.tasks import BYTE_LM, CharTransformer

    shape = BYTE_LM["cuda"]
    with torch.device("meta"):  # count parameters without allocating them
        model = CharTransformer(256, d_model=shape["d_model"], heads=shape["heads"], layers=shape["layers"],
                                context=shape["context"], ff=shape["ff"])  # fmt: skip
    n = sum(p.numel() for p in model.parameters())
    assert 2_000_000 <= n <= 10_000_000 and 4 <= shape["layers"] <= 6


def test_regime_shares_are_recorded_for_three_regime_rows_only(toy_task):
    r = run_cell(Cell(toy_task, "geodyn-three-regime", 0.01, 1, "quick"))
    assert r.regimes and len(r.regimes) == len(r.steps) - 1
    assert all(abs(sum(x) - 1.0) < 1e-12 and min(x) >= 0 for x in r.regimes)
    assert run_cell(Cell(toy_task, "adamw", 0.01, 1, "quick")).regimes == []


def test_regime_shares_count_each_variable_by_its_dominant_term():
    # Coordinates whose K̂ relative to s² = mean K̂ sits in each regime of f̃ = ε̃ + √x + ζ̃x (ε̃ = ζ̃ = 0.1): one
    # with x ≈ 198 (ζ̃x = 19.8 > √x = 14.1: fast), 99 with x ≈ 0.02 (√x = 0.14 > ε̃: intermediate), 100 with x ≈ 0
    # (slow). Shares 0.5 / 0.495 / 0.005.
    p = torch.nn.Parameter(torch.zeros(200, dtype=torch.float64))
    opt = presets.three_regime([p], lr=0.0, eps=0.1, zeta=0.1, moment="raw", betas=(0.0, 0.0))
    p.grad = torch.cat([torch.tensor([100.0]), torch.ones(99), torch.full((100,), 1e-4)]).double()
    opt.step()
    lam = p.grad**2
    x = lam / lam.mean()
    terms = torch.stack([torch.full_like(x, 0.1), x.sqrt(), 0.1 * x])
    expected = (torch.bincount(terms.argmax(0), minlength=3).double() / 200).tolist()
    assert expected == pytest.approx([0.5, 0.495, 0.005])  # the example exercises all three regimes
    assert regime_shares(opt) == pytest.approx(expected)
    assert regime_shares(torch.optim.AdamW([p])) is None


def test_regime_shares_of_the_raw_law_use_the_bias_corrected_moment():
    # Raw g = ε + √λ + ζλ with ε = 0.01, ζ = 10 (band 1e-4 < λ < 1e-2). After one step with β₂ = 0.9, K = 0.1 G² and
    # K̂ = K / (1 − 0.9) = G². G = 1e-3, 0.015, 10: K̂ = 1e-6 (slow), 2.25e-4 (intermediate), 100 (fast); the
    # uncorrected K would put the middle one at 2.25e-5, slow.
    from geodyn.metric import ThreeRegime

    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    law = ThreeRegime(0.01, 10.0)
    opt = presets.three_regime([p], lr=0.0, eps=0.01, zeta=10.0, moment="raw", betas=(0.0, 0.9), scale_free=False)
    p.grad = torch.tensor([1e-3, 0.015, 10.0], dtype=torch.float64)
    opt.step()
    assert law.regime(p.grad**2).tolist() == [0, 1, 2] and law.regime(0.1 * p.grad**2).tolist() == [0, 0, 2]
    assert regime_shares(opt) == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_sweep_scores_each_pair_against_adamw_on_the_tuning_split(toy_task):
    from geodyn.bench.sweep import sweep

    before = set(OPTIMIZERS)
    out = sweep([toy_task], "quick", eps_values=(0.1,), zeta_values=(0.0, 1.0))
    assert set(OPTIMIZERS) == before  # the temporary rows are gone
    ref = out["adamw"][toy_task]
    assert math.isfinite(ref)
    budget = 2.0 * TASKS[toy_task].steps["quick"]
    for row in out["rows"]:
        steps = min(row["steps"][toy_task], budget)
        assert row["ratio_geomean"] == pytest.approx(steps / min(ref, budget))  # one task: the geometric mean is it
        assert row["lr"][toy_task] in lr_grid("quick")
    # the two rows are different laws, so they are run, not copied
    r0 = run_cell(Cell(toy_task, "geodyn-three-regime", out["rows"][1]["lr"][toy_task], TUNING_SEED, "quick", 1.0))
    assert r0.steps_to_target == out["rows"][1]["steps"][toy_task]  # ζ̃ = 1, ε̃ = 0.1: the bench row's defaults


def test_char_text_held_out_parts_are_interleaved_blocks_of_the_whole_text():
    from pydoc_data.topics import topics

    from geodyn.bench.tasks import TEXT_BLOCK, _text

    splits, vocab = _text()
    whole = torch.cat([splits["train"], splits["validation"], splits["test"]])
    assert len(whole) == len("\n".join(topics[k] for k in sorted(topics)))
    stream = "\n".join(topics[k] for k in sorted(topics))
    stream = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in stream)
    alphabet = sorted(set(stream))
    for role in ("validation", "test"):
        text = "".join(alphabet[i] for i in splits[role].tolist())
        assert 0.05 * len(stream) < len(text) < 0.2 * len(stream)
        # where the role's first and last blocks sit in the whole text: spread over it, not one contiguous tenth
        first, last = stream.find(text[:TEXT_BLOCK]), stream.rfind(text[-TEXT_BLOCK // 2 :])
        assert first >= 0 and last >= 0
        assert last - first > 0.5 * len(stream), role
