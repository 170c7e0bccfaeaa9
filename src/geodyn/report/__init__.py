"""The HTML report of a run folder (EQUATIONS.md claims vs verdicts, figures, numbers, environment)."""

from geodyn.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
