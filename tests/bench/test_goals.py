"""The three-regime goals of docs/bench.md judged from a results table (BenchResults.goals)."""

from __future__ import annotations

import math

from geodyn.bench.runner import GOAL_ROWS, BenchResults, PairSummary
from geodyn.bench.scoring import spread

INF = math.inf
DIAG, KRON = GOAL_ROWS["diagonal"], GOAL_ROWS["kronecker"]
TASKS = ["t1", "t2", "t3", "t4", "t5", "t6", "byte-lm"]


def _pair(task: str, opt: str, steps: float, seconds: float | None = None, complete: bool = True) -> PairSummary:
    s = spread([steps] * 5)
    t = spread([steps if seconds is None else seconds] * 5)
    return PairSummary(task, opt, [], 0.01, False, [], s, t, complete=complete, best_hyper=0.01)


def _results(table: dict[str, dict[str, float]], seconds: dict[str, dict[str, float]] | None = None,
             unfinished: tuple[tuple[str, str], ...] = ()) -> BenchResults:  # fmt: skip
    pairs = [
        _pair(t, o, v, (seconds or {}).get(o, {}).get(t), complete=(t, o) not in unfinished)
        for o, row in table.items()
        for t, v in row.items()
    ]
    return BenchResults("full", TASKS, list(table), pairs)


def test_diagonal_goal_counts_tasks_within_the_reference_and_fails_on_an_infinity():
    ref = {t: 100.0 for t in TASKS}
    six = {t: (90.0 if i < 6 else 150.0) for i, t in enumerate(TASKS)}
    g = _results({"adamw": ref, DIAG: six}).goals()["diagonal"]
    assert g["met"] is True and g["steps_within_reference"] == TASKS[:6]
    five = {t: (100.0 if i < 5 else 101.0) for i, t in enumerate(TASKS)}  # equal counts as within; 101 does not
    assert _results({"adamw": ref, DIAG: five}).goals()["diagonal"]["met"] is False
    with_inf = dict(six, **{"byte-lm": INF})
    g = _results({"adamw": ref, DIAG: with_inf}).goals()["diagonal"]
    assert g["met"] is False and g["infinite_where_reference_finite"] == ["byte-lm"]
    # ∞ where the reference is ∞ too is not held against it
    g = _results({"adamw": dict(ref, **{"byte-lm": INF}), DIAG: with_inf}).goals()["diagonal"]
    assert g["met"] is True
    # five within and one unfinished: undecided, not failed
    open_ = _results({"adamw": ref, DIAG: five}, unfinished=(("t6", DIAG),)).goals()["diagonal"]
    assert open_["met"] is None and open_["unfinished"] == ["t6"]


def test_kronecker_goal_needs_fewest_steps_on_five_and_fewest_seconds_on_four_with_a_language_model():
    ref = {t: 100.0 for t in TASKS}
    kron = {t: (50.0 if i < 5 else 200.0) for i, t in enumerate(TASKS)}
    other = {t: (50.0 if i == 0 else 80.0) for i, t in enumerate(TASKS)}  # ties the Kronecker row on t1
    fast = {KRON: {t: 1.0 for t in TASKS}}
    g = _results({"adamw": ref, KRON: kron, "soap": other}, seconds=fast).goals()["kronecker"]
    assert g["fewest_steps"] == TASKS[:5] and g["met_steps"] is True
    # its seconds are 1.0 on every task against the others' 50–100: fewest seconds everywhere, the LM included
    assert g["fewest_time"] == TASKS and g["met_time"] is True
    slow_lm = {KRON: {t: (1.0 if t != "byte-lm" else 1e9) for t in TASKS}}
    g = _results({"adamw": ref, KRON: kron, "soap": other}, seconds=slow_lm).goals()["kronecker"]
    assert "byte-lm" not in g["fewest_time"] and len(g["fewest_time"]) == 6 and g["met_time"] is False
    beaten = dict(other, t2=10.0)
    g = _results({"adamw": ref, KRON: kron, "soap": beaten}, seconds=fast).goals()["kronecker"]
    assert g["fewest_steps"] == ["t1", "t3", "t4", "t5"] and g["met_steps"] is False
    g = _results({"adamw": ref, KRON: kron, "soap": beaten}, seconds=fast, unfinished=(("t6", "soap"),)).goals()
    assert g["kronecker"]["met_steps"] is None and g["kronecker"]["unfinished_steps"] == ["t6"]


def test_goals_appear_in_the_tables():
    ref = {t: 100.0 for t in TASKS}
    text = _results({"adamw": ref, DIAG: ref, KRON: ref}).markdown()
    assert "Goals of the three-regime law" in text and "yes" in text
