"""Run PyTorch's own optimizer tests (``TestOptimRenewed`` of PyTorch's test/test_optim.py) against geodyn.

PyTorch's test file is PyTorch's code and is not part of this repository; fetch the one that matches the installed
torch (see docs/optimizer-contract.md) and pass its path::

    python tools/run_torch_optim_tests.py /path/to/pytorch/test/test_optim.py [--optimizers CGD adam ...] [-k PATTERN]

The helpers the tests are parametrised by (``torch.testing._internal.common_optimizers``) ship inside the torch
wheel. This script replaces the entries of its ``optim_db`` with OptimizerInfo entries for :class:`geodyn.optim.CGD`,
``KronCGD``, ``FullCGD`` and every preset of :mod:`geodyn.optim.presets` (with the ``supports_*`` flags they honestly
have), imports the test file, runs ``TestOptimRenewedCPU`` and prints passed / failed / skipped per optimizer, with
the reason of every skip and the first line of every failure. The exit status is 1 when a test failed.

Sibling modules that test_optim.py imports for other test classes (``optim.test_optim``, ``optim.test_lrscheduler``,
``optim.test_swa_utils``) are used when PyTorch's test/optim/ folder sits beside the file, and replaced by empty
stand-ins otherwise: only ``TestOptimRenewed`` is run.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
import types
import unittest
from collections import Counter, defaultdict
from pathlib import Path


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_file", type=Path, help="PyTorch's test/test_optim.py")
    parser.add_argument("--optimizers", nargs="*", help="only these entries (names as in the table)")
    parser.add_argument("-k", dest="pattern", help="only tests whose name contains this substring")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    return parser.parse_args()


def geodyn_optim_db(only: list[str] | None = None) -> list:
    """OptimizerInfo entries for geodyn's optimizers and presets, with the flags each one really supports."""
    import unittest as _unittest

    import torch
    from torch.testing._internal.common_methods_invocations import DecorateInfo
    from torch.testing._internal.common_optimizers import (
        ErrorOptimizerInput,
        OptimizerInfo,
        OptimizerInput,
        get_error_inputs_for_all_optims,
    )

    from geodyn.metric import Power, ThreeRegime
    from geodyn.optim import CGD, FullCGD, KronCGD, presets

    def inputs(*extra: tuple[dict, str], weight_decay: float = 0.0, maximize_decay: float = 0.1):
        def make(device, dtype=None):
            maximize = {"weight_decay": maximize_decay, "maximize": True} if maximize_decay else {"maximize": True}
            common = [
                ({}, "default"),
                ({"lr": 1e-2}, "non-default lr"),
                ({"lr": torch.tensor(0.001)}, "tensor lr"),
                ({"weight_decay": 0.1}, "non-zero weight_decay"),
                (maximize, "maximize"),
            ]
            # A default decay other than 0 (adamw) is written out, so that tests that leave out decaying configs
            # (test_step_is_noop_for_zero_grads) see it, as they see torch's AdamW by its name.
            default = {"weight_decay": weight_decay} if weight_decay else {}
            return [OptimizerInput(params=None, kwargs=default | k, desc=d) for k, d in common + list(extra)]

        return make

    def errors(device, dtype):
        found = get_error_inputs_for_all_optims(device, dtype)
        if str(device).startswith("cpu"):
            found += [
                ErrorOptimizerInput(
                    OptimizerInput(params=None, kwargs={"lr": -1e-2}, desc="negative lr"),
                    error_type=ValueError,
                    error_regex="invalid learning rate lr=-0.01",
                ),
                ErrorOptimizerInput(
                    OptimizerInput(params=None, kwargs={"weight_decay": -0.5}, desc="negative weight decay"),
                    error_type=ValueError,
                    error_regex="invalid weight_decay=-0.5",
                ),
            ]
        return found

    # (entry, extra optimizer-specific inputs, diagonal?) — diagonal optimizers offer foreach and complex parameters.
    specs = {
        "CGD": (CGD, [({"metric": ThreeRegime(1e-8, 2.0), "moment": "raw"}, "three-regime law, raw moment"),
                      ({"metric": Power(1) + 1e-8, "moment": "raw", "betas": (0.0, 0.9)}, "natural gradient, β₁ = 0"),
                      ({"decoupled_weight_decay": False, "weight_decay": 0.1}, "L2 weight decay")], True),
        "KronCGD": (KronCGD, [({"spectrum": "adaptive"}, "adaptive spectrum"),
                              ({"sides": "smaller", "precondition_every": 1}, "one side"),
                              ({"refresh": "eigh", "precondition_every": 3}, "eigh refresh")], False),
        "FullCGD": (FullCGD, [({"precondition_every": 3}, "stale eigenbasis"),
                              ({"rank": 2}, "rank 2 + diagonal")], False),
    }  # fmt: skip
    extras = {"sgd": [({"momentum": 0.9}, "momentum")], "rmsprop": [({"alpha": 0.9}, "alpha")]}
    for name in presets.__all__:
        factory = getattr(presets, name)
        probe = factory([torch.nn.Parameter(torch.zeros(1))])
        specs[name] = (factory, extras.get(name, []), isinstance(probe, CGD))

    # Full-matrix natural gradient divides each direction by its noise eigenvalue: the loss gradient of the tests'
    # problem excites about one direction per weight, so coupled L2 decay along the others (at the damping floor,
    # 1e-2 λ_max) is amplified ~100× against it and the loss falls under maximize=True, as that law says it must.
    # Its maximize input therefore carries no decay (torch gives each optimizer its own inputs the same way).
    MAXIMIZE_DECAY = {"natural_gradient_full": 0.0}  # noqa: N806

    db = []
    for name, (cls, extra, diagonal) in specs.items():
        if only and name not in only:
            continue
        skips = ()
        if not diagonal:
            reason = f"{name} refuses complex parameters with a ValueError (supports_complex=False)"
            skips = (DecorateInfo(_unittest.skip(reason), "TestOptimRenewed", "test_complex"),)
        db.append(
            OptimizerInfo(
                cls,
                optim_inputs_func=inputs(
                    *extra, weight_decay=_default_weight_decay(cls), maximize_decay=MAXIMIZE_DECAY.get(name, 0.1)
                ),
                optim_error_inputs_func=errors,
                supported_impls=("foreach",) if diagonal else (),
                not_og_supported_flags=("foreach", "maximize") if diagonal else ("maximize",),
                supports_complex=diagonal,
                supports_sparse=False,
                has_capturable_arg=False,
                skips=skips,
            )
        )
    return db


def _default_weight_decay(factory) -> float:
    parameter = inspect.signature(factory).parameters.get("weight_decay")
    return float(parameter.default) if parameter is not None else 0.0


def _install_stand_ins(test_dir: Path) -> None:
    """Empty modules for the sibling test modules that test_optim.py imports but that are not fetched."""
    sys.path.insert(0, str(test_dir))
    for name in ("optim", "optim.test_optim", "optim.test_lrscheduler", "optim.test_swa_utils"):
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so that "optim.x" resolves under it
        module.__getattr__ = lambda attr, _n=name: type(attr, (), {"__module__": _n})  # type: ignore[attr-defined]
        sys.modules[name] = module


class _Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: list[tuple[str, str, str]] = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.append((test.id(), "passed", ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes.append((test.id(), "failed", self._one_line(err)))

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes.append((test.id(), "failed", self._one_line(err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes.append((test.id(), "skipped", reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes.append((test.id(), "xfail", self._one_line(err)))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes.append((test.id(), "failed", "unexpected success"))

    @staticmethod
    def _one_line(err) -> str:
        kind, value, _ = err
        text = str(value).strip().splitlines()
        return f"{kind.__name__}: {text[0] if text else ''}"[:200]


def main() -> int:
    args = _parse()
    test_file = args.test_file.resolve()
    if not test_file.is_file():
        print(f"no such file: {test_file}", file=sys.stderr)
        return 2
    sys.argv = sys.argv[:1]  # torch's common_utils parses the command line when imported

    from torch.testing._internal import common_optimizers

    ours = geodyn_optim_db(args.optimizers)
    common_optimizers.optim_db[:] = ours  # in place: test_optim.py imports this very list
    names = sorted((info.name for info in ours), key=len, reverse=True)

    _install_stand_ins(test_file.parent)
    spec = importlib.util.spec_from_file_location("pytorch_test_optim", test_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    suite = unittest.TestLoader().loadTestsFromTestCase(module.TestOptimRenewedCPU)
    if args.pattern:
        suite = unittest.TestSuite(t for t in suite if args.pattern in t.id())
    runner = unittest.TextTestRunner(resultclass=_Recorder, verbosity=0, stream=sys.stderr)
    result = runner.run(suite)

    table: dict[str, Counter] = defaultdict(Counter)
    notes: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for test_id, outcome, detail in result.outcomes:
        method = test_id.rsplit(".", 1)[-1]
        owner = next((n for n in names if re.search(rf"_{re.escape(n)}_cpu", method)), "(none)")
        table[owner][outcome] += 1
        if outcome != "passed":
            test_name = re.sub(rf"_{re.escape(owner)}_cpu.*$", "", method)
            notes[(owner, outcome, detail)].append(test_name)

    lines = ["| optimizer | passed | failed | skipped |", "|---|---:|---:|---:|"]
    for name in [info.name for info in ours] + (["(none)"] if "(none)" in table else []):
        c = table[name]
        lines.append(f"| {name} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    lines.append("")
    for (owner, outcome, detail), tests in sorted(notes.items()):
        lines.append(f"- {owner}, {outcome}: {', '.join(sorted(set(tests)))} — {detail}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
