"""`ablate tune`: the [tune] table checked, the search spaces read from the registries, the test split read by the
final seeds alone (a spy), pruned trials recorded as pruned and never in the findings, a tune interrupted and resumed
(in this process, and a real process killed with SIGKILL) giving the trials an uninterrupted tune gives, the report.

Tunes here are tiny: digits, 2 epochs, 2-4 trials per objective (a fraction of a second a cell)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.data.dataset import Splits
from ablate.grid.executors import SerialExecutor
from ablate.grid.spec import GridSpec, load_spec
from ablate.limits import SearchRange
from ablate.runs.loading import TuneRun, load_run
from ablate.runs.study import read_trials
from ablate.tune import search as tune_search
from ablate.tune.search import run_tune
from ablate.tune.settings import TuneSettings, default_metric, settings_from_table
from ablate.tune.space import parameter_range, plan_objectives, searchable_keys
from tests.support import ROOT, write_toml

TINY_AXES = {"dataset": ["digits"], "epochs": [1], "feat_dim": [8]}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as each of a grid's workers gets on a busy machine: a digits cell then takes a fraction of
    a second, where two threads on shared cores take seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_settings(**values) -> TuneSettings:
    return TuneSettings(**{"budget": 3, "seeds": 2, "prune_after_trials": 1, "prune_after_epochs": 1, **values})


def run_tiny(run_dir, spec: GridSpec, settings: TuneSettings):
    return run_tune(spec, plan_objectives(spec, settings), settings, run_dir, SerialExecutor(), quiet=True)


def counted_trials(run_dir) -> pd.DataFrame:
    """The trials that count toward the budget: study, trial number, state, cell id, params."""
    trials = read_trials(run_dir)
    return trials[trials["counted"]][["study", "trial", "state", "cell_id", "params", "value"]].reset_index(drop=True)


# --- the [tune] table ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("table, message", [
    ({"budgte": 3}, "[tune] has unknown key(s) 'budgte'; expected keys among budget, metric"),
    ({"budget": 0}, "[tune] budget must be an integer >= 1, got 0"),
    ({"budget": 2.5}, "[tune] budget must be an integer >= 1, got 2.5"),
    ({"seeds": True}, "[tune] seeds must be an integer >= 1, got True"),
    ({"metric": "accuracy"}, "[tune] metric must be a metric of the registry, got 'accuracy'; expected one of"),
    ({"metric": "intra_class_distance"}, "[tune] metric 'intra_class_distance' has no direction"),
    ({"prune_percentile": 100}, "[tune] prune_percentile must be a number in (0, 100), got 100"),
    ({"space": {"lr": [0.1]}}, "[tune] space.lr must be [low, high] (numbers, low < high)"),
    ({"space": {"lr": [0.1, 0.01]}}, "[tune] space.lr must be [low, high] (numbers, low < high)"),
    ({"space": {"lr": True}}, "[tune] space.lr must be [low, high]"),
    ({"space": 3}, "[tune] space must be a table of option = [low, high] or false"),
])
def test_the_tune_table_is_checked_naming_the_grid_and_the_key(table, message):
    with pytest.raises(ValueError) as error:
        settings_from_table(table, "g.toml")
    assert str(error.value).startswith("grid g.toml: ") and message in str(error.value)


def test_a_space_key_that_is_not_searched_or_a_range_outside_the_declared_one_is_refused(tmp_path):
    spec = GridSpec(axes=TINY_AXES, source="g.toml")
    with pytest.raises(ValueError, match=r"grid g.toml: \[tune\] space names 'momentum', not searched by a tune; "
                                         r"searchable: lambda, alpha, lr, "):
        plan_objectives(spec, tiny_settings(space={"momentum": (0.5, 0.9)}))
    with pytest.raises(ValueError, match=r"grid g.toml: \[tune\] space.lr: the range \[0.0001, 0.1\] must lie within "
                                         r"\[0.001, 0.3\] \(log\)"):
        plan_objectives(spec, tiny_settings(space={"lr": (1e-4, 0.1)}))


def test_a_grid_file_with_a_tune_table_loads_and_the_grid_ignores_it(tmp_path):
    path = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        [tune]
        budget = 5
        metric = "map_at_r"
        [tune.space]
        lr = [0.01, 0.1]
        margin = false
    """)
    spec = load_spec(path)
    settings = settings_from_table(spec.tune, spec.source)
    assert (settings.budget, settings.metric, settings.space) == (5, "map_at_r", {"lr": (0.01, 0.1), "margin": False})
    assert settings.with_overrides("cli", budget=2, metric=None).budget == 2
    assert default_metric() in ("cosine_map_at_r", "map_at_r")


# --- the search spaces, from the registries ---------------------------------------------------------------------

def test_objectives_are_the_rows_without_the_searched_keys_and_lambda_zero_stays_a_setting_of_its_own():
    spec = GridSpec(axes={**TINY_AXES, "head": ["softmax", "arcface"], "lambda": [0, 0.01, 0.1], "seed": [0, 1]})
    objectives = plan_objectives(spec, tiny_settings())
    assert len(objectives) == 4  # (softmax, arcface) x (without center loss, with it): 0.01 and 0.1 merge
    spaces = {(o.fixed["head"], "lambda" in o.space): o.space for o in objectives}
    assert set(spaces[("softmax", False)]) == {"lr"}  # lambda 0 fixed, and alpha only moves centers under lambda > 0
    assert set(spaces[("softmax", True)]) == {"lr", "lambda", "alpha"}
    assert set(spaces[("arcface", True)]) == {"lr", "lambda", "alpha", "margin", "scale"}
    assert spaces[("softmax", True)]["lr"].log and spaces[("softmax", True)]["lambda"].log  # they span decades
    arcface_margin = spaces[("arcface", True)]["margin"]
    assert (arcface_margin.low, arcface_margin.high, arcface_margin.log) == (0.0, np.pi / 2, False)
    assert all("seed" not in o.fixed and "split_seed" not in o.fixed for o in objectives)
    assert len({o.study for o in objectives}) == 4


def test_the_bundled_contest_is_every_objective_at_both_sizes_on_both_datasets_with_one_budget():
    from ablate.data import recipe
    from ablate.objectives import HEADS, NO_PAIR_LOSS, PAIR_LOSSES

    spec = load_spec("contest")
    settings = settings_from_table(spec.tune, spec.source)
    objectives = plan_objectives(spec, settings)
    datasets, sizes = ("digits", "fashion-mnist"), (64, 2)
    pairs = [p for p in PAIR_LOSSES if p != NO_PAIR_LOSS]
    expected = ([(d, f, h, NO_PAIR_LOSS, center) for d in datasets for f in sizes for h in HEADS
                 for center in (False, True)]
                + [(d, f, "softmax", p, False) for d in datasets for f in sizes for p in pairs])
    found = [(o.fixed["dataset"], o.fixed["feat_dim"], o.fixed["head"], o.fixed["pair_loss"], "lambda" in o.space)
             for o in objectives]
    assert sorted(found) == sorted(expected) and len(found) == 5 * 2 * 2 * 2 + 2 * 2 * 2 == 48
    for objective in objectives:  # center loss searched (lambda and alpha) exactly where the objective has it
        center = "lambda" in objective.space
        assert ("alpha" in objective.space) == center and (objective.fixed.get("lambda") == 0) != center
        assert "lr" in objective.space
        dataset_recipe = recipe(objective.fixed["dataset"])  # one trunk, batch and epochs per dataset
        assert {k: objective.fixed[k] for k in ("model", "epochs", "batch_size")} == \
            {"model": "mlp", "epochs": dataset_recipe.epochs, "batch_size": dataset_recipe.batch_size}
    assert len({o.study for o in objectives}) == len(objectives)
    assert (settings.budget, settings.seeds, settings.metric) == (16, 10, "cosine_map_at_r")
    assert settings.final_seeds == list(range(1, 11)) and settings.trial_seed not in settings.final_seeds


def test_alpha_is_searched_below_its_rules_stable_bound_and_integer_parameters_as_integers():
    spec = GridSpec(axes={**TINY_AXES, "rule": ["ema"], "alpha": [0.01], "lambda": [0.1], "head": ["sphereface"]})
    (objective,) = plan_objectives(spec, tiny_settings())
    assert objective.space["alpha"].high == pytest.approx(2 / 64)  # ema: alpha <= 2 / batch_size
    assert objective.space["margin"] == SearchRange(1, 4, integer=True)


def test_a_parameter_declared_later_joins_the_search_through_its_range():
    from ablate.objectives import Parameter

    assert parameter_range(Parameter("x", "x", 1.0, 0.0, 2.0, "x")) == SearchRange(0.0, 2.0)
    assert parameter_range(Parameter("x", "x", 1.0, 0.0, float("inf"), "x")) is None  # unbounded: held at its value
    assert parameter_range(Parameter("x", "x", 1.0, 0.0, float("inf"), "x", search=SearchRange(1, 8))) == \
        SearchRange(1, 8)
    assert {"lr", "lambda", "alpha", "margin", "scale", "pair_margin"} <= set(searchable_keys())


# --- the test split is read by the final seeds alone ----------------------------------------------------------

def test_the_test_split_is_read_by_the_final_seeds_alone(tmp_path, monkeypatch):
    calls = []
    original_test = Splits.test
    monkeypatch.setattr(Splits, "test", lambda self: calls.append(self.name) or original_test(self))
    trial_calls, final_calls = [], []

    def spied(function, seen):
        def run(*args):
            before = len(calls)
            record = function(*args)
            seen.append(len(calls) - before)
            return record
        return run

    monkeypatch.setattr(tune_search, "train_trial", spied(tune_search.train_trial, trial_calls))
    monkeypatch.setattr(tune_search, "train_cell", spied(tune_search.train_cell, final_calls))
    spec = GridSpec(axes={**TINY_AXES, "lambda": [0, 0.1]})
    outcome = run_tiny(tmp_path / "run", spec, tiny_settings(budget=2))
    assert len(trial_calls) == 4 and trial_calls == [0] * 4  # 2 objectives x 2 trials: no trial read the test split
    assert len(final_calls) == 4 and final_calls == [1] * 4  # 2 objectives x 2 seeds: each final cell read it once
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    trials = [r for r in records if not r["scored_on_test"]]
    assert len(trials) == 4 and all("test_accuracy" not in r and "map_at_r" not in r for r in trials)
    assert all(r["test_samples"] is None for r in trials)  # a trial does not even count its test samples
    assert not [p for p in (tmp_path / "run" / "cells").glob("*.npz")
                if not json.loads(p.with_suffix(".json").read_text())["scored_on_test"]]  # no trial saved features
    finals = [r for r in records if r["scored_on_test"]]
    assert len(finals) == 4 and {r["seed"] for r in finals} == {1, 2} and {r["split_seed"] for r in records} == {0}
    assert len({r["test_samples"] for r in finals}) == 1 and finals[0]["test_samples"] > 0  # one shared split
    assert {r["seed"] for r in trials} == {0}  # the trials' seed is none of the final seeds
    assert all(r["val_map_at_r"] is not None and r["map_at_r"] is not None for r in finals if r["status"] == "ok")
    assert len(outcome.finals) == 4
    run = load_run(tmp_path / "run")  # the findings pair the selected settings by the keys the tune did not search
    assert "lambda" in run.config_columns and not {"lr", "alpha", "seed", "split_seed"} & set(run.config_columns)
    assert sorted(run.results["cell_id"]) == sorted(outcome.finals)


def test_center_loss_is_compared_with_its_head_alone_each_at_its_own_selected_setting(tmp_path):
    """A head's scale is searched with center loss and without it: the two selected scales differ, and center loss
    must still be compared with the head alone (before: 'no counterpart' for every head with a searched parameter)."""
    from ablate.analysis.objective_findings import center_findings

    spec = GridSpec(axes={**TINY_AXES, "head": ["softmax", "normface"], "lambda": [0, 0.1]})
    # scales above about 30 with center loss diverged in this tiny training: every trial, so nothing to select
    run_tiny(tmp_path / "run", spec, tiny_settings(budget=2, space={"scale": (2.0, 8.0)}))
    run = load_run(tmp_path / "run")
    normface = run.results[run.results["head"] == "normface"]
    scales = {lam > 0: set(cells["scale"]) for lam, cells in normface.groupby("lambda")}
    assert len(scales[True]) == len(scales[False]) == 1 and scales[True] != scales[False]  # each its own setting
    findings = center_findings(run)
    assert findings.unmatched == 0
    against = {row.setting["objective"].split(" ")[0]: row.against for row in findings.rows}
    assert set(against) == {"softmax", "normface"}
    assert against["normface"] == f"normface s={scales[False].pop():g}"  # the head alone, at its selected scale


# --- pruning -------------------------------------------------------------------------------------------------

def test_pruned_trials_are_recorded_as_pruned_and_never_enter_the_findings(tmp_path):
    spec = GridSpec(axes={**TINY_AXES, "epochs": [2], "lambda": [0.1]})
    run_dir = tmp_path / "run"
    run_tiny(run_dir, spec, tiny_settings(budget=3, prune_percentile=99, seeds=1))  # any trial behind the best: pruned
    trials = read_trials(run_dir)
    pruned = trials[trials["state"] == "PRUNED"]
    assert len(pruned) >= 1 and len(trials[trials["counted"]]) == 3
    for _, trial in pruned.iterrows():
        record = json.loads((run_dir / "cells" / f"{trial['cell_id']}.json").read_text())
        assert record["status"] in ("pruned", "diverged") and record["val_map_at_r"] is None
        if record["status"] == "pruned":
            assert len(record["curve_validation"]) < 2 == record["epochs"]  # stopped before its last epoch
    run = load_run(run_dir)
    assert isinstance(run, TuneRun)
    assert set(run.results["cell_id"]).isdisjoint(pruned["cell_id"])  # the findings' table holds final cells only
    assert (run.results["scored_on_test"]).all() and len(run.results) == 1
    assert run.selected["trial"].tolist() == [trials.loc[trials["value"].idxmax(), "trial"]]


# --- resume ----------------------------------------------------------------------------------------------------

class Interrupt:
    """A trial cell function that raises KeyboardInterrupt (Ctrl-C, or the CLI's SIGTERM) at its `at`-th call."""

    def __init__(self, function, at: int):
        self.function, self.at, self.calls = function, at, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.function(*args)


def test_an_interrupted_tune_resumes_to_the_trials_of_an_uninterrupted_one(tmp_path, monkeypatch):
    spec = GridSpec(axes={**TINY_AXES, "epochs": [2], "lambda": [0, 0.1]})
    settings = tiny_settings(budget=3, seeds=1)
    whole = tmp_path / "whole"
    run_tiny(whole, spec, settings)

    run_dir = tmp_path / "resumed"
    monkeypatch.setattr(tune_search, "train_trial", Interrupt(tune_search.train_trial, at=3))
    assert run_tiny(run_dir, spec, settings).interrupted
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells").glob("*.json")}
    states = read_trials(run_dir)["state"].tolist()
    # interrupted in the second round (one trial of each objective asked, the first of them in its cell): 2 finished
    assert states.count("RUNNING") == 2 and len(before) == 2
    monkeypatch.undo()
    assert not run_tiny(run_dir, spec, settings).interrupted

    resumed = read_trials(run_dir)
    failed = resumed[resumed["state"] == "FAIL"]
    assert len(failed) == 2 and not failed["counted"].any()  # the interrupted trials, marked failed, not counted
    assert resumed["retry_of"].dropna().tolist() == failed["trial"].tolist()  # and retried
    pd.testing.assert_frame_equal(counted_trials(run_dir).drop(columns="trial"),
                                  counted_trials(whole).drop(columns="trial"))  # the same settings, cells and values
    after = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells").glob("*.json")}
    assert {name: after[name] for name in before} == before  # no finished cell trained again
    assert sorted(after) == sorted(p.name for p in (whole / "cells").glob("*.json"))

    again = run_tiny(run_dir, spec, settings)  # a finished tune, rerun: nothing trains, nothing changes
    assert not again.trained_epochs and len(again.finals) == 2
    pd.testing.assert_frame_equal(counted_trials(run_dir).drop(columns="trial"),
                                  counted_trials(whole).drop(columns="trial"))


@pytest.fixture
def system_temp():
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ablate-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # three tunes in processes of their own: about 40 s on 2 busy cores
def test_a_tune_killed_mid_study_resumes_without_losing_or_repeating_trials(tmp_path, system_temp):
    spec = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        epochs = 2
        feat_dim = 8
        lambda = [0, 0.1]
        [tune]
        budget = 4
        seeds = 1
        prune_after_trials = 1
        prune_after_epochs = 1
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(system_temp)}

    def command(run_dir):
        return [sys.executable, "-m", "ablate", "tune", str(spec), "--out", str(run_dir), "--workers", "2", "--quiet"]

    whole = subprocess.run(command(tmp_path / "whole"), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(command(run_dir), cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list((run_dir / "cells").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the tune and its workers, mid-study, with no chance to clean up
    process.wait()
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells").glob("*.json")}
    assert 3 <= len(before) < 8, "the kill must land mid-study"
    assert (read_trials(run_dir)["state"] == "RUNNING").any(), "the kill must land while a trial runs"

    rerun = subprocess.run(command(run_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    resumed, uninterrupted = counted_trials(run_dir), counted_trials(tmp_path / "whole")
    assert resumed.groupby("study").size().tolist() == [4, 4]  # the budget, each trial once
    pd.testing.assert_frame_equal(resumed.drop(columns="trial"), uninterrupted.drop(columns="trial"))
    after = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells").glob("*.json")}
    assert {name: after[name] for name in before} == before  # no finished trial cell trained again
    assert sorted(after) == sorted(p.name for p in (tmp_path / "whole" / "cells").glob("*.json"))
    trials = read_trials(run_dir)
    assert not trials["counted"][trials["state"] == "FAIL"].any()  # a trial the kill interrupted is retried
    assert not (run_dir / ".scratch").exists() and not list(run_dir.rglob("*.tmp"))


# --- the command and the report --------------------------------------------------------------------------------

def test_the_command_tunes_reports_and_refuses_bad_input_before_writing(tmp_path):
    spec = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        epochs = 1
        feat_dim = 8
        [tune]
        budget = 2
        seeds = 2
    """)
    runner = CliRunner()
    bad = runner.invoke(main, ["tune", str(spec), "--out", str(tmp_path / "bad"), "--metric", "nope"])
    assert bad.exit_code != 0 and "metric must be a metric of the registry, got 'nope'" in bad.output
    assert not (tmp_path / "bad").exists()
    result = runner.invoke(main, ["tune", str(spec), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 trials" in result.output and "selected trial" in result.output
    assert "final seeds" in result.output
    report = runner.invoke(main, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    assert "Selected settings" in page and "Search trace" in page and "tune run run" in page
    grid = runner.invoke(main, ["grid", str(spec), "--out", str(tmp_path / "run")])
    assert grid.exit_code != 0 and "holds a tune run (from `ablate tune`)" in grid.output
