"""Running a grid into a run folder: plan what is left, run it, keep every finished cell, write the tables.

    RUN_DIR/grid.toml, provenance.json, cells/<id>.json|.npz (|.safetensors with save_weights), results/curves/summary
    tables

The folder is written through ablate.runs (RunFolder: the lock, run.json, the cell store, the tables and
provenance); this module decides which cells run and in what order. A rerun of the same RUN_DIR skips finished
cells ("ok" or "diverged"), and failed ones unless retry_failed; force reruns every cell. Cells of an earlier spec
that the current one no longer holds stay in cells/ but not in the tables. Kept weights are never rewritten but by a
forced rerun. A model or dataset from outside the package is loaded and checked (its outputs, its labels) before the
run folder is touched, and named with its file and digest in provenance.json ("factories").
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from ablate.data import DATASETS
from ablate.grid import progress
from ablate.grid.estimate import task_costs
from ablate.grid.execute import CellResult, failed_record, task_cells
from ablate.grid.progress import CostBar
from ablate.grid.sharing import shared_tasks, sharing_text
from ablate.grid.spec import MAX_CELLS, GridSpec, expand
from ablate.loss import DEFAULT_VARIANT, available_variants, get_variant
from ablate.messages import bounded
from ablate.models import MODELS
from ablate.runs import schema, tables
from ablate.runs.cells import CellStore
from ablate.runs.columns import ConfigColumns
from ablate.runs.folder import RunFolder
from ablate.runs.record import stamped
from ablate.signals import interrupt_status
from ablate.train import CellConfig
from ablate.train.cell import check_factories, resolve_device
from ablate.train.config import config_columns

TABLE_INTERVAL_S = 10.0  # rewrite the tables at most this often while cells finish, and at the end


@dataclass
class GridPlan:
    """cells: (cell_id, config) of the grid, in spec order; finished / failed_before: ids skipped; to_run: pairs;
    invalid: why each cell file that is not a valid record of its cell was set aside (its cell, if in the grid,
    runs again)."""

    cells: list
    finished: list
    failed_before: list
    to_run: list
    not_in_grid: list = field(default_factory=list)
    invalid: list = field(default_factory=list)
    without_weights: list = field(default_factory=list)  # finished cells with no kept weights (save_weights only)


@dataclass
class GridOutcome:
    """records: cell_id -> record for every cell of the grid that has one, in grid order."""

    plan: GridPlan
    records: dict
    ran: int
    interrupted: bool = False
    exit_status: int = 0  # of an interrupted run: 128 + the signal's number (ablate.signals.interrupt_status)

    def status_counts(self) -> Counter:
        return Counter(record["status"] for record in self.records.values())

    def failed(self) -> dict:
        return {i: r for i, r in self.records.items() if r["status"] == "failed"}


def grid_cells(spec: GridSpec, max_cells: int = MAX_CELLS) -> list:
    """(cell_id, resolved config) for every cell of the spec, in spec order; a bad option, or more than
    max_cells cells, raises ValueError."""
    return [(schema.cell_id(config), config) for config in expand(spec, max_cells)]


def check_runnable_here(configs: list) -> None:
    """Refuse, before anything is written, cells whose variant or device this machine cannot run
    (a Triton kernel on a CPU without TRITON_INTERPRET=1, device cuda without a GPU): else each would fail."""
    missing: Counter[tuple[str, str]] = Counter()  # (variant, device) -> cells
    for config in configs:
        device = resolve_device(config["device"])
        if config["variant"] not in available_variants(device):
            missing[(config["variant"], str(device))] += 1
    if missing:
        what = "; ".join(f"{n} cell(s) of variant {v!r} cannot run on {d} here (it needs {get_variant(v).runs_on}; "
                         f"available there: {', '.join(available_variants(d))})" for (v, d), n in missing.items())
        raise ValueError(f"{what}. Leave those cells out (e.g. --set variant={DEFAULT_VARIANT}), or run them with "
                         "--executor ray where they can run")


def make_plan(cells: list, store: CellStore, *, retry_failed: bool = False, force: bool = False,
              save_weights: bool = False) -> GridPlan:
    """Which of `cells` ((cell_id, config) pairs) run now, given the records already in the store; save_weights:
    the finished ones without kept weights are named (they are not rerun for it)."""
    existing, invalid = store.records()
    finished, failed_before, to_run = [], [], []
    for pair in cells:
        status = existing.get(pair[0], {}).get("status")
        if force or status is None or (status == "failed" and retry_failed):
            to_run.append(pair)
        elif status in schema.FINISHED:
            finished.append(pair[0])
        else:
            failed_before.append(pair[0])
    in_grid = {i for i, _ in cells}
    without_weights = [i for i in finished if not store.has_weights(i)] if save_weights else []
    return GridPlan(cells, finished, failed_before, to_run, [i for i in existing if i not in in_grid], invalid,
                    without_weights)


def varying_keys(configs: list) -> list:
    """The config keys that take more than one value across `configs`."""
    return [k for k in configs[0] if len({repr(c[k]) for c in configs}) > 1] if configs else []


def describe_cell(config: dict, keys: list) -> str:
    return " ".join(f"{k}={config[k]}" for k in keys)


def last_error_line(record: dict) -> str:
    """The last line of a failed cell's error: usually the exception and its message."""
    lines = (record.get("error") or "").splitlines()
    return lines[-1] if lines else "(no error text)"


def result_line(record: dict, keys: list) -> str:
    """One line per finished cell: status, id, the varying settings, accuracy or error, time."""
    line = f"{record['status']:<8} {record['cell_id']} {describe_cell(record, keys)}"
    if record["status"] == "failed":
        return f"{line}  error: {last_error_line(record)}"
    if record["status"] == "diverged":
        line += f"  diverged in epoch {record.get('diverged_epoch')}"
    else:
        line += f"  test_accuracy {record['test_accuracy']:.4f}"
    return f"{line}  {record['wall_time_s']:.1f}s"


def plan_line(plan: GridPlan, tasks: list) -> str:
    """What the run will do: the cells to run and how many trainings they take, what it skips and sets aside."""
    line = f"{len(plan.cells)} cells: {len(plan.to_run)} to run"
    if len(tasks) != len(plan.to_run):
        line += f" in {len(tasks)} trainings ({sharing_text(tasks)})"
    if plan.finished:
        line += f", {len(plan.finished)} finished earlier (skipped)"
    if plan.failed_before:
        line += f", {len(plan.failed_before)} failed earlier (skipped; --retry-failed reruns them)"
    if plan.not_in_grid:
        line += (f"; {len(plan.not_in_grid)} records in cells/ are not in this grid (kept on disk, left out of the "
                 "tables)")
    if plan.invalid:
        line += (f"; {len(plan.invalid)} file(s) in cells/ are not valid records (their cells run again), e.g. "
                 f"{plan.invalid[0]}")
    if plan.without_weights:
        line += (f"; {len(plan.without_weights)} finished earlier without kept weights (--force reruns them to keep "
                 "them)")
    return line


def check_cell_factories(configs: list) -> None:
    """Load and check, once per distinct model and dataset setting, every cell whose model or dataset is a factory
    outside the package (ablate.train.cell.check_factories): a ValueError naming the factory before anything
    runs."""
    checked = set()
    for config in configs:
        if config["model_digest"] is None and config["dataset_digest"] is None:
            continue
        key = tuple(config[k] for k in ("model", "model_digest", "dataset", "dataset_digest", "feat_dim",
                                        "embedding_norm", "holdout_classes"))
        if key not in checked:
            checked.add(key)
            check_factories(CellConfig.from_dict(config))


def factories_text(configs: list) -> str:
    """The models and datasets from outside the package that `configs` train, each with its file and digest
    ("model pkg.mod:f (/path/pkg/mod.py, sha256 ...); dataset ..."); "" when none."""
    described: dict[str, None] = {}  # in order, each once
    for config in configs:
        for kind, registry in (("model", MODELS), ("dataset", DATASETS)):
            if config[f"{kind}_digest"] is not None and (factory := registry.get(config[kind]).factory) is not None:
                described[f"{kind} {factory.describe()}"] = None
    return "; ".join(described)


def run_grid(spec: GridSpec, run_dir, executor, *, retry_failed: bool = False, force: bool = False,
             quiet: bool = False, max_cells: int = MAX_CELLS) -> GridOutcome:
    """Run the cells of `spec` that are not done into run_dir with `executor` (see ablate.grid.executors).

    On KeyboardInterrupt the finished cells are kept, the tables and provenance written, and the
    outcome returned with interrupted=True.
    """
    cells = grid_cells(spec, max_cells)  # before touching run_dir, so that a bad spec leaves nothing behind
    configs = [config for _, config in cells]
    check_cell_factories(configs)
    columns = config_columns()
    with RunFolder.writing(run_dir, "grid", config_columns=columns) as run:
        store = run.cells(columns)
        plan = make_plan(cells, store, retry_failed=retry_failed, force=force, save_weights=spec.save_weights)
        tasks = shared_tasks(plan.to_run)
        log = (lambda text: None) if quiet else (lambda text: tqdm.write(bounded(text)))
        log(plan_line(plan, tasks))
        run.write_spec(spec.to_toml())
        factories = factories_text(configs)
        run.note_provenance(cells=len(plan.cells), cells_to_run=len(plan.to_run), trainings_to_run=len(tasks),
                            cells_skipped=len(plan.finished) + len(plan.failed_before),
                            **({"factories": factories} if factories else {}))
        outcome = GridOutcome(plan, _ordered(plan, store.records()[0]), ran=0)
        run.write_tables(_tables(outcome, columns))
        try:
            _run_cells(executor, run, store, outcome, tasks, columns, log, quiet, force)
        except KeyboardInterrupt as interrupt:
            outcome.interrupted, outcome.exit_status = True, interrupt_status(interrupt)
        run.tables = _tables(outcome, columns)
        run.provenance.update(cells_run=outcome.ran, interrupted=outcome.interrupted,
                              status_counts=dict(outcome.status_counts()))
    return outcome


def _run_cells(executor, run: RunFolder, store: CellStore, outcome: GridOutcome, tasks: list,
               columns: ConfigColumns, log, quiet: bool, force: bool) -> None:
    """Run the tasks (ablate.grid.sharing) of outcome.plan.to_run, saving each cell (its weights too, replaced only
    with force) as it finishes; the tables every TABLE_INTERVAL_S. The bar weighs each task by its estimated cost and
    moves with its epochs (ablate.grid.progress).
    """
    keys = varying_keys([config for _, config in outcome.plan.cells])
    last_write = time.monotonic()
    bar = CostBar([i for i, _ in tasks], task_costs(tasks), quiet)
    bar.set_cells(len(outcome.plan.to_run))
    progress.report_to(bar.epoch)
    try:
        for result in executor.run(tasks, store.scratch()):
            results = _with_followers(result, dict(tasks))
            for one in results:
                record = stamped(one.record, one.cell_id, run.stamp)
                store.save(one.cell_id, record, one.features, one.weights, replace_weights=force)
                outcome.records[one.cell_id] = record
                outcome.ran += 1
                log(result_line(record, keys))
            bar.finished(result.cell_id, len(results))
            if time.monotonic() - last_write > TABLE_INTERVAL_S:
                run.write_tables(_tables(outcome, columns))
                last_write = time.monotonic()
    finally:
        progress.report_to(None)
        bar.close()


def _with_followers(result: CellResult, tasks: dict) -> list:
    """The task's results, lead first: a follower whose result did not come back (its task failed as a whole, e.g.
    its worker died) fails with the lead's error."""
    _, followers = task_cells(tasks.get(result.cell_id, {}))
    returned = {one.cell_id for one in result.followers}
    lost = [CellResult(i, {**failed_record(c, result.record.get("error") or "its task ended without it"),
                           "cell_id": i}, None)
            for i, c in followers if i not in returned]
    return [result, *result.followers, *lost]


def _ordered(plan: GridPlan, records: dict) -> dict:
    return {i: records[i] for i, _ in plan.cells if i in records}


def _tables(outcome: GridOutcome, columns: ConfigColumns) -> dict[str, pd.DataFrame]:
    """The tables of the grid's records so far, in grid order; none before the first record."""
    outcome.records = _ordered(outcome.plan, outcome.records)
    return tables.grid_tables(list(outcome.records.values()), columns) if outcome.records else {}


def load_results(run_dir) -> pd.DataFrame:
    """RUN_DIR/results.parquet, or rebuilt from the cell records when it is missing or older than one of them
    (see ablate.runs.tables.load_results)."""
    return tables.load_results(run_dir, config_columns())[0]
