"""What a grid will do, said before it runs: `ablate grid NAME --dry-run` and `ablate grid --list`.

    dry_run_lines(spec, base, overrides, workers)   the products and their sizes, where each --set lands, the cells
                                                    per value of each varied key, the trainings and the estimate
    listing_lines(workers)                          each bundled grid: its cells, its estimate, its description

Both count cells with the expansion the run uses (ablate.grid.spec.expand, then the cells sharing a training:
ablate.grid.sharing), so the count a dry run prints is the count the grid then runs.
"""

import os
from collections import Counter

from ablate.grid.estimate import MEASURED_ON, grid_estimate
from ablate.grid.runner import grid_cells, varying_keys
from ablate.grid.sharing import shared_tasks, sharing_text
from ablate.grid.spec import ALL_PRODUCTS, GridSpec, bundled_grids, load_spec
from ablate.runs.configs import format_label


def _product_lines(spec: GridSpec) -> list:
    """'  [axes]      lambda 5 x alpha 3 x rule 2 x seed 10 = 300 cells (at dataset=digits, variant=gather)', then
    each [[also]] with the single values it sets itself."""
    lines = []
    tables = [spec.axes, *spec.also]
    for n, (text, size, table) in enumerate(zip(spec.product_texts(), spec.product_sizes(), tables)):
        name = "[axes]" if n == 0 else f"[[also]] {n}"
        fixed = ", ".join(f"{k}={v[0]}" for k, v in table.items() if len(v) == 1)
        at = f" (at {fixed})" if fixed else ""
        lines.append(f"  {name:<11} {text} = {size:,} cell{'s' if size != 1 else ''}{at}")
    return lines


def _reach_lines(base: GridSpec, overrides: dict, scope: str) -> list:
    """Where each --set landed."""
    if not overrides:
        return []
    if not base.also:
        return [f"--set {key}: [axes] (the grid has no [[also]] table)" for key in overrides]
    if scope != ALL_PRODUCTS:
        return [f"--set {key}: [axes] only (--set-scope {scope}: each [[also]] keeps its own values)"
                for key in overrides]
    return ([f"--set {key}: {'; '.join(base.reach(key))}" for key in overrides]
            + ["(--set-scope main confines each --set to [axes])"])


def _value_lines(spec: GridSpec, cells: list) -> list:
    """'  lambda      0 x60, 0.001 x60, ...': the cells per value of each key the grid names that varies."""
    named = {key for product in spec.products() for key in product}
    lines = []
    for key in varying_keys(cells):
        if key in named:
            counts = Counter(format_label(c[key]) for c in cells)
            lines.append(f"  {key:<11} " + ", ".join(f"{value} x{count}" for value, count in counts.items()))
    return lines


def dry_run_lines(spec: GridSpec, base: GridSpec, overrides: dict, scope: str, workers: int,
                  max_cells: int) -> list:
    """What `ablate grid` would run for `spec` (`base` with `overrides` at `scope`) with `workers` local workers."""
    pairs = grid_cells(spec, max_cells)
    tasks = shared_tasks(pairs)
    configs = [config for _, config in pairs]
    duplicates = spec.cell_count() - len(pairs)
    lines = [f"grid {spec.source or '(command line)'}: {len(pairs):,} cells"
             + (f" ({duplicates:,} held by more than one product, counted once)" if duplicates else ""),
             *_product_lines(spec), *_reach_lines(base, overrides, scope)]
    lines += ["cells per value of each varied key:", *_value_lines(spec, configs)]
    shared = sharing_text(tasks)
    lines.append(f"{len(tasks):,} trainings" + (f": {shared}" if shared else ""))
    lines.append(f"estimated time: {grid_estimate(tasks, workers).text()}; costs measured on {MEASURED_ON}"
                 + _load_text())
    return lines


def _load_text() -> str:
    """'; the load average here is 14.2 on 2 cores: expect longer' when other work shares the cores."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"; the load average here is {load:.1f} on {cores} cores: expect longer" if load > 0.5 * cores else ""


def listing_lines(workers: int) -> list:
    """One line per bundled grid: name, cells, estimated time with `workers` workers, description."""
    lines = []
    for name, description in bundled_grids().items():
        try:
            pairs = grid_cells(load_spec(name))
        except ValueError as exc:  # a grid that cannot expand here (a dataset's extra missing, say)
            lines.append(f"{name:<12} cannot expand here: {exc}")
            continue
        tasks, cells = shared_tasks(pairs), len(pairs)
        lines.append(f"{name:<12} {cells:>5,} cells  {grid_estimate(tasks, workers).text()}\n{'':<12} {description}")
    return lines
