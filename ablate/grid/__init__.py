"""Grids of training cells: specs, stable cell ids, resumable runs on local workers or Ray, tidy tables.

    spec = load_spec("default").with_overrides({"epochs": [1]})
    outcome = run_grid(spec, "runs/x", make_executor("local", workers=2))
    results = load_results("runs/x")    # one row per cell

The run folder a grid writes (cells, tables, provenance) is ablate.runs's: the grid decides what runs, ablate.runs
stores it.
"""

from ablate.grid.executors import make_executor
from ablate.grid.runner import load_results, run_grid
from ablate.grid.spec import GridSpec, bundled_grids, expand, load_spec, parse_set_option
from ablate.runs.schema import cell_id

__all__ = ["GridSpec", "bundled_grids", "cell_id", "expand", "load_results", "load_spec", "make_executor",
           "parse_set_option", "run_grid"]
