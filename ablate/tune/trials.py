"""A tuning trial where a worker runs it: a cell trained without its test split, pruned epoch by epoch.

Runs in the tune's own process, in a local worker process or in a Ray task (everything here is importable by name
and picklable). The worker never writes the study: `TrialWatch` carries a snapshot of the finished trials of the
trial's study (their validation value after each epoch) and decides pruning with Optuna's pruner against it, in
memory. Each objective's trials run one after another (ablate.tune.study), so the snapshot is the study as the
pruner would read it from the journal, and the decision is the same wherever the trial runs (no shared file system
needed); the tune then writes the trial's curve and state into the journal itself (one writer).
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

from ablate.runs.schema import cell_id


@dataclass(frozen=True)
class PrunerSettings:
    """Optuna's PercentilePruner (MedianPruner at 50): prune a trial whose best validation value so far lies below
    `percentile` of the finished trials' values at the same epoch (above, for a metric to minimize), once
    `after_trials` trials finished, from epoch `after_epochs` on."""

    percentile: float
    after_trials: int
    after_epochs: int

    def pruner(self):
        import optuna

        return optuna.pruners.PercentilePruner(self.percentile, n_startup_trials=self.after_trials,
                                               n_warmup_steps=self.after_epochs)


class TrialWatch:
    """An EpochWatch (ablate.train.loop) for one trial: metric, the validation metric measured after every epoch;
    stop(epoch, value) reports it to an in-memory copy of the trial's study (the `finished` trials' curves, each
    {epoch: value}) and returns the pruner's decision."""

    def __init__(self, metric: str, maximize: bool, pruner: PrunerSettings, finished: list):
        self.metric, self.maximize, self.pruner, self.finished = metric, maximize, pruner, finished
        self._trial = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_trial": None}  # the in-memory study is built where the trial runs

    def _running_trial(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if self.maximize else "minimize",
                                    pruner=self.pruner.pruner())
        distribution = optuna.distributions.FloatDistribution(0.0, 1.0)  # a placeholder: the pruner reads no params
        for curve in self.finished:  # the pruner reads their curves alone: the value is a placeholder
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.0,
                                                      intermediate_values=curve, params={"_": 0.0},
                                                      distributions={"_": distribution}))
        return study.ask()

    def stop(self, epoch: int, value: float) -> bool:
        if self._trial is None:
            self._trial = self._running_trial()
        self._trial.report(value, epoch)
        with warnings.catch_warnings():  # numpy's "All-NaN slice" for a trial whose every value is NaN: pruned
            warnings.simplefilter("ignore", RuntimeWarning)
            return self._trial.should_prune()


def train_trial(watches: dict, config: dict, features_path: Path) -> dict:
    """A trial's cell: train `config` (a resolved config dict) watched by watches[its cell id], scored on validation
    only (the test split is never read; no features are saved, features_path is not used)."""
    from ablate.train import CellConfig, run_cell

    return run_cell(CellConfig.from_dict(config), scored_on_test=False, watch=watches[cell_id(config)])
