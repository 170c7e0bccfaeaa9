"""Every Python code block of README.md and docs/*.md runs (in order, one namespace per file, in a temporary
folder). Blocks that cannot run here (distributed training) carry the fence info ``python no-run``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NO_RUN = "python no-run"


def blocks(path: Path) -> list[tuple[str, str, int]]:
    """(info string, code, line number) of every fenced block."""
    text = path.read_text()
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:6] == [
        "# geodyn",
        "",
        "```bash",
        "make demo    # set up .venv and run `geodyn reproduce --quick`: every claim of the paper, one HTML report",
        "make test    # set up .venv and run the test suite",
        "```",
    ]


def test_blocks_that_do_not_run_are_few():
    skipped = [(p.name, line) for p in DOCS for info, _, line in blocks(p) if info == NO_RUN]
    # the DDP and FSDP2 examples of docs/scaling.md need several ranks; the torch.compile recipe of
    # docs/optimizer-contract.md costs tens of seconds to compile (tests/optim/test_contract_state.py runs it)
    assert len(skipped) <= 3, skipped
    infos = {info for p in DOCS for info, _, _ in blocks(p)}
    assert infos <= {"python", NO_RUN, "bash", "toml", "text", ""}, infos  # a typo in "python" would skip a block


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for info, code, line in blocks(path):
        if info != "python":
            continue
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{path.name}, block at line {line}: {type(exc).__name__}: {exc}") from exc
