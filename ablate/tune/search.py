"""Running a tune into a run folder: each objective's study searched with the same budget on validation data, then
each selected setting trained on fresh seeds and scored, once, on the test split.

    RUN_DIR/tune.toml, study.journal, cells/<id>.json (trials and final seeds), trials, results/curves/summary tables

Each objective has its own Optuna study (TPE, seeded per trial) in the run folder's journal. The studies advance
together, one trial each per round: a round's trials (at most one per objective) run through the grid's executors
as cells (ablate.grid.executors; cell ids, temp folders and resume as a grid's), and each study is told its trial's
result before it is asked for the next. So every study sees its trials one after another, as a single process would,
whatever --workers, and the tune is reproducible: trial k of an objective is proposed by TPE seeded with
(sampler_seed, k) from the trials before it.

Resume: the folder's lock makes this process the journal's only writer, so a trial the journal shows RUNNING was
running when an earlier tune was killed. It is marked failed (user attribute "interrupted"; it does not count toward
the budget) and its setting asked again first (its retry). A trial whose cell finished before the kill finds its
record in cells/ and is told from it without training; one whose cell did not train again from its start. Either
way the retry gets the same setting and the same result, and the studies go on as if never stopped.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ablate.grid.execute import train_cell
from ablate.grid.runner import make_plan
from ablate.grid.spec import GridSpec
from ablate.runs import tables
from ablate.runs.cells import CellStore
from ablate.runs.folder import RunFolder
from ablate.runs.record import CURVE_PREFIX, stamped, validation_key
from ablate.runs.schema import FAILED, TRIALS, TUNE_SPEC, cell_id
from ablate.runs.study import (
    CELL_ATTR,
    OBJECTIVE_ATTR,
    RETRY_ATTR,
    STATUS_ATTR,
    counts_toward_budget,
    retried,
    selected_trials,
    trials_table,
)
from ablate.signals import interrupt_status
from ablate.train import CellConfig
from ablate.train.config import config_columns
from ablate.tune.settings import TuneSettings
from ablate.tune.space import Objective
from ablate.tune.trials import PrunerSettings, TrialWatch, train_trial

if TYPE_CHECKING:  # Optuna is imported where a tune runs: `ablate --help` does without it
    import optuna

VALIDATION_CURVE = CURVE_PREFIX + "validation"


@dataclass
class ObjectiveSearch:
    """One objective's study while the tune runs, and its progress bar."""

    objective: Objective
    study: "optuna.Study"
    bar: tqdm | None = None

    def trials(self, states=None) -> list:
        return self.study.get_trials(deepcopy=False, states=states)

    def counted(self) -> int:
        """The trials that count toward the budget (ablate.runs.study.counts_toward_budget)."""
        trials = self.trials()
        numbers = retried(trials)
        return sum(counts_toward_budget(t, numbers) for t in trials)


@dataclass
class TuneOutcome:
    """searches: one per objective; finals: cell id -> record of the final seeds' cells; epochs: epochs trained now,
    by trials and by final cells."""

    searches: list
    finals: dict = field(default_factory=dict)
    trained_epochs: Counter = field(default_factory=Counter)
    interrupted: bool = False
    exit_status: int = 0  # of an interrupted tune: 128 + the signal's number (ablate.signals.interrupt_status)
    wall_time_s: float = 0.0


def open_search(storage, objective: Objective, settings: TuneSettings) -> ObjectiveSearch:
    """The objective's study, made or loaded; each trial an interrupted tune left running gets a retry with its
    setting, enqueued to be asked first, and is then marked failed (a failed trial with a retry does not count). In
    that order, so that a tune killed in between finds the trial running and its retry already there."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=objective.study, load_if_exists=True,
                                direction="maximize" if settings.maximize else "minimize")
    if study.user_attrs.get(OBJECTIVE_ATTR) != objective.label:
        study.set_user_attr(OBJECTIVE_ATTR, objective.label)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.number not in retried(study.get_trials(deepcopy=False)):
            study.enqueue_trial(trial.params, user_attrs={RETRY_ATTR: trial.number})
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return ObjectiveSearch(objective, study)


def _distributions(objective: Objective) -> dict:
    from optuna.distributions import FloatDistribution, IntDistribution

    return {key: IntDistribution(int(r.low), int(r.high), log=r.log) if r.integer
            else FloatDistribution(r.low, r.high, log=r.log) for key, r in objective.space.items()}


def ask(search: ObjectiveSearch, settings: TuneSettings):
    """The next trial of the objective: a retry first, else TPE's proposal, TPE seeded by (sampler_seed, the trials
    counted so far) so that the k-th trial's setting depends on the trials before it alone."""
    import optuna

    index = search.counted()
    search.study.sampler = optuna.samplers.TPESampler(seed=settings.sampler_seed * 1_000_003 + index,
                                                      n_startup_trials=settings.tpe_startup_trials)
    return search.study.ask(_distributions(search.objective))


def trial_config(objective: Objective, params: dict, settings: TuneSettings) -> dict:
    """The resolved config of a trial: the objective's fixed options, the trial's params, the tune's trial seed
    (weights and split); ValueError for a combination CellConfig refuses."""
    options = {**objective.fixed, **params, "seed": settings.trial_seed, "split_seed": settings.trial_seed}
    return CellConfig.from_dict(options).to_dict()


def tell(search: ObjectiveSearch, trial, record: dict, metric: str) -> None:
    """Report the record's validation curve to the trial (epoch by epoch) and end it: COMPLETE with the record's
    validation metric, PRUNED for a cell that was pruned, diverged, or whose metric is undefined (TPE ranks pruned
    trials below every finished one), FAIL for a cell that raised."""
    import optuna

    for epoch, value in enumerate(record.get(VALIDATION_CURVE) or [], start=1):
        trial.report(float("nan") if value is None else float(value), epoch)
    trial.set_user_attr(STATUS_ATTR, record["status"])
    value = record.get(validation_key(metric))
    state = optuna.trial.TrialState
    if record["status"] == FAILED:
        search.study.tell(trial, state=state.FAIL)
    elif record["status"] == "ok" and value is not None:
        search.study.tell(trial, value)
    else:
        search.study.tell(trial, state=state.PRUNED)
    if search.bar is not None:
        search.bar.update()


def _watch(search: ObjectiveSearch, settings: TuneSettings) -> TrialWatch:
    """The pruner's view of the objective's study: its finished trials' validation curves."""
    import optuna

    finished = [dict(t.intermediate_values) for t in search.trials((optuna.trial.TrialState.COMPLETE,))]
    pruner = PrunerSettings(settings.prune_percentile, settings.prune_after_trials, settings.prune_after_epochs)
    return TrialWatch(settings.metric, settings.maximize, pruner, finished)


def _epochs(record: dict) -> int:
    return len(record.get(CURVE_PREFIX + "softmax_loss") or [])


def search_round(searches: list, settings: TuneSettings, executor, store: CellStore, stamp: dict,
                 outcome: TuneOutcome) -> bool:
    """One trial of every objective still under its budget: asked, run (or read back from its finished cell), told.
    False when every objective has spent its budget."""
    pending, watches = {}, {}
    for search in searches:
        if search.counted() >= settings.budget:
            continue
        trial = ask(search, settings)
        try:
            config = trial_config(search.objective, trial.params, settings)
        except ValueError as exc:
            tell(search, trial, {"status": FAILED, "error": str(exc)}, settings.metric)
            continue
        cell = cell_id(config)
        trial.set_user_attr(CELL_ATTR, cell)
        record = store.read(cell)
        if record is not None:
            tell(search, trial, record, settings.metric)
        else:
            pending[cell] = (search, trial, config)
            watches[cell] = _watch(search, settings)
    if not pending and all(s.counted() >= settings.budget for s in searches):
        return False
    tasks = [(cell, config) for cell, (_, _, config) in pending.items()]
    for result in executor.run(tasks, store.scratch(), cell_fn=partial(train_trial, watches)):
        record = stamped(result.record, result.cell_id, stamp)
        store.save(result.cell_id, record, None)
        outcome.trained_epochs["trials"] += _epochs(record)
        search, trial, _ = pending[result.cell_id]
        tell(search, trial, record, settings.metric)
    return True


def final_cells(searches: list, storage, store: CellStore, settings: TuneSettings) -> list:
    """(cell_id, config) of every final cell: each objective's selected trial's options over the final seeds."""
    table = trials_table(storage)
    selected = selected_trials(table[table["study"].isin([s.objective.study for s in searches])])
    cells = []
    for cell in selected["cell_id"]:
        record = store.read(cell)
        if record is None:
            continue
        config = {c: record[c] for c in config_columns()}
        for seed in settings.final_seeds:
            final = CellConfig.from_dict({**config, "seed": seed}).to_dict()
            cells.append((cell_id(final), final))
    return cells


def tune_toml(spec: GridSpec, settings: TuneSettings) -> str:
    """The grid as resolved, and the tune's settings as checked, as TOML (written to RUN_DIR/tune.toml)."""
    from ablate.escape import toml_key, toml_value

    lines = [spec.to_toml().rstrip("\n"), "", "[tune]"]
    for key, value in vars(settings).items():
        if key != "space" and value is not None:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    if settings.space:
        lines += ["", "[tune.space]"]
        lines += [f"{toml_key(k)} = {toml_value(list(v) if v is not False else False)}"
                  for k, v in settings.space.items()]
    return "\n".join(lines) + "\n"


def run_tune(spec: GridSpec, objectives: list, settings: TuneSettings, run_dir, executor, *,
             quiet: bool = False) -> TuneOutcome:
    """Search every objective with settings.budget trials, then run the final seeds of each selected setting, into
    run_dir with `executor` (ablate.grid.executors). On KeyboardInterrupt what finished is kept (the journal, the
    cells), the tables written, and the outcome returned with interrupted=True."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    columns = config_columns()
    with RunFolder.writing(run_dir, "tune", config_columns=columns) as run:
        store = run.cells(columns)
        run.write_spec(tune_toml(spec, settings), TUNE_SPEC)
        storage = run.study_storage()
        searches = [open_search(storage, objective, settings) for objective in objectives]
        outcome = TuneOutcome(searches)
        run.note_provenance(objectives=len(objectives), budget=settings.budget, metric=settings.metric,
                            final_seeds=len(settings.final_seeds))
        try:
            with executor.session():  # Ray joined once for every round, not once a round
                _search_and_score(searches, settings, executor, run, store, storage, outcome, quiet)
        except KeyboardInterrupt as interrupt:
            outcome.interrupted, outcome.exit_status = True, interrupt_status(interrupt)
        finally:
            _close_bars(searches)
        finals = list(outcome.finals.values())
        run.tables = {TRIALS: trials_table(storage), **(tables.grid_tables(finals, columns) if finals else {})}
        outcome.wall_time_s = time.perf_counter() - started
        run.provenance.update(interrupted=outcome.interrupted, trained_epochs=dict(outcome.trained_epochs),
                              tune_wall_time_s=outcome.wall_time_s)
    return outcome


def _search_and_score(searches: list, settings: TuneSettings, executor, run: RunFolder, store: CellStore, storage,
                      outcome: TuneOutcome, quiet: bool) -> None:
    """The rounds of trials until every budget is spent, then the final seeds of each selected setting."""
    for i, search in enumerate(searches):
        search.bar = tqdm(total=settings.budget, initial=min(search.counted(), settings.budget),
                          desc=f"trials {i + 1}/{len(searches)}", unit="trial", disable=quiet, leave=True)
    while search_round(searches, settings, executor, store, run.stamp, outcome):
        run.write_tables({TRIALS: trials_table(storage)})
    _close_bars(searches)
    cells = final_cells(searches, storage, store, settings)
    plan = make_plan(cells, store)
    with tqdm(total=len(plan.to_run), desc="final seeds", unit="cell", disable=quiet or not plan.to_run) as bar:
        for result in executor.run(plan.to_run, store.scratch(), cell_fn=train_cell):
            record = stamped(result.record, result.cell_id, run.stamp)
            store.save(result.cell_id, record, result.features)
            outcome.trained_epochs["final seeds"] += _epochs(record)
            bar.update()
    records = store.records()[0]
    outcome.finals = {i: records[i] for i, _ in cells if i in records}


def _close_bars(searches: list) -> None:
    for search in searches:
        if search.bar is not None:
            search.bar.close()
            search.bar = None
