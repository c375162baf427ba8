"""The HTML report of grid, bench and distributed bench runs: `build_report(run_dirs, out)`, `ablate report`."""

from ablate.report.build import build_report

__all__ = ["build_report"]
