"""A tune's study: Optuna's journal storage in the run folder (RUN_DIR/study.journal, one study per objective),
opened for the tune (ablate.runs.folder) and read back checked, as a table of its trials.

    journal_storage(run_dir, writable)   Optuna's JournalStorage on the journal file
    read_trials(run_dir)                 the trials table of every study in it (RunFolderError naming the file if
                                         it cannot be read)
    trials_table(storage)                one row per trial (TRIAL_COLUMNS), studies in their order of creation
    selected_trials(trials)              per objective, its best finished trial (the setting the tune selects)

The journal is a log of operations, each appended whole and synced (os.fsync) by Optuna, so a tune killed at any
moment leaves every earlier operation readable; the trials that were running then are found in state RUNNING by
the next tune (ablate.tune.study), which marks them failed and retries their settings. Optuna is imported here only
when a study is opened: the rest of the suite runs without it.
"""

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.io import UnreadableFile, check_regular_file
from ablate.runs.schema import MAX_STUDY_BYTES, STUDY, RunFolderError

# Study user attributes: the objective in words, and the cell options it fixes (its row of the grid).
OBJECTIVE_ATTR = "objective"
# Trial user attributes: the trial's cell, the cell's status, and the trial it retries (a trial running when a tune
# was killed, marked failed).
CELL_ATTR, STATUS_ATTR, RETRY_ATTR = "cell_id", "cell_status", "retry_of"
TRIAL_COLUMNS = ("study", "objective", "direction", "trial", "state", "value", "best_so_far", "counted", "cell_id",
                 "status", "epochs", "retry_of", "params")
COMPLETE = "COMPLETE"


def journal_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STUDY


def journal_storage(run_dir: str | Path, *, writable: bool) -> Any:
    """Optuna's JournalStorage on RUN_DIR/study.journal. Read-only (writable False): the file must exist, be a
    regular file and hold at most MAX_STUDY_BYTES (UnreadableFile otherwise), and nothing is written."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = journal_path(run_dir)
    if not writable:
        check_regular_file(path, MAX_STUDY_BYTES)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def retried(trials: list) -> set:
    """The numbers of the trials another trial of `trials` (Optuna FrozenTrials) retries."""
    return {t.user_attrs[RETRY_ATTR] for t in trials if RETRY_ATTR in t.user_attrs}


def counts_toward_budget(trial: Any, retried_numbers: set) -> bool:
    """A trial counts toward its objective's budget once it has a result: finished (COMPLETE), pruned (PRUNED: it
    fell behind, or diverged), or failed by its own cell (FAIL); a trial failed because the tune was killed while it
    ran does not (another trial retries it)."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and trial.number not in retried_numbers)


def trials_table(storage: Any) -> pd.DataFrame:
    """One row per trial of every study in `storage`: study, objective (in words), direction, trial (its number),
    state (Optuna's: COMPLETE, PRUNED, FAIL, RUNNING, WAITING), value (the validation metric of a finished trial),
    best_so_far (the best value of the study's finished trials up to this one), counted (toward the budget),
    cell_id, status (its cell's), epochs (trained), retry_of, params (JSON)."""
    rows = []
    for study in storage.get_all_studies():
        maximize = study.directions[0].name == "MAXIMIZE"
        best = math.nan
        trials = storage.get_all_trials(storage.get_study_id_from_name(study.study_name), deepcopy=False)
        retried_numbers = retried(trials)
        for trial in trials:
            state = trial.state.name
            value = trial.values[0] if state == COMPLETE and trial.values else math.nan
            if not math.isnan(value):
                best = value if math.isnan(best) else (max if maximize else min)(best, value)
            rows.append({"study": study.study_name, "objective": str(study.user_attrs.get(OBJECTIVE_ATTR, "")),
                         "direction": "maximize" if maximize else "minimize", "trial": trial.number,
                         "state": state, "value": value, "best_so_far": best,
                         "counted": counts_toward_budget(trial, retried_numbers),
                         "cell_id": str(trial.user_attrs.get(CELL_ATTR, "")),
                         "status": str(trial.user_attrs.get(STATUS_ATTR, "")),
                         "epochs": len(trial.intermediate_values), "retry_of": trial.user_attrs.get(RETRY_ATTR),
                         "params": json.dumps(trial.params, sort_keys=True)})
    table = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    return table.astype({"value": "float64", "best_so_far": "float64", "retry_of": "Int64"})


def read_trials(run_dir: str | Path) -> pd.DataFrame:
    """The trials table of RUN_DIR's study; RunFolderError naming the journal when it cannot be read."""
    path = journal_path(run_dir)
    try:
        return trials_table(journal_storage(run_dir, writable=False))
    except UnreadableFile as exc:
        raise RunFolderError(str(exc)) from None
    except Exception as exc:  # Optuna's replay raises its own errors (KeyError, ValueError, ...) on a broken log
        raise RunFolderError(f"{path}: not a readable Optuna journal ({type(exc).__name__}: {exc})") from None


def selected_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Per study, in study order, the finished (COMPLETE) trial with the best value: the setting the tune selects
    (ties: the earliest trial). A study without one has no row."""
    finished = trials[trials["state"] == COMPLETE]
    rows = []
    for _, group in finished.groupby("study", sort=False):
        ascending = group["direction"].iloc[0] == "minimize"
        rows.append(group.sort_values(["value", "trial"], ascending=[ascending, True], kind="stable").iloc[0])
    return pd.DataFrame(rows, columns=trials.columns).reset_index(drop=True)
