"""A grid says what it will do: --dry-run and --list count the cells the grid then runs, say where each --set lands
(--set-scope confines it), how many trainings the cells take, and estimate the time from the measured costs."""

import re

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.grid import load_spec, run_grid
from ablate.grid.estimate import cell_cost, grid_estimate
from ablate.grid.executors import SerialExecutor
from ablate.grid.runner import grid_cells
from ablate.grid.sharing import shared_tasks
from ablate.grid.spec import bundled_grids
from ablate.loss import get_variant
from ablate.runs.record import SHARES_TRAINING_WITH
from ablate.train import CellConfig
from tests.support import write_toml


def dry_run(*args) -> str:
    result = CliRunner().invoke(main, ["grid", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output


def counted(output: str) -> tuple:
    """(cells, trainings) a dry run prints."""
    cells = re.search(r"^grid \S+: ([\d,]+) cells", output, re.M).group(1)
    trainings = re.search(r"^([\d,]+) trainings", output, re.M).group(1)
    return int(cells.replace(",", "")), int(trainings.replace(",", ""))


def instant_cell(config: dict, features_path) -> dict:
    """A stand-in cell: the record of a cell that trained, at once."""
    return {**config, "status": "ok", "test_accuracy": 1.0, "wall_time_s": 0.0}


@pytest.mark.parametrize("name", list(bundled_grids()))
def test_the_dry_run_of_every_bundled_grid_counts_the_cells_the_grid_then_runs(tmp_path, name):
    cells, trainings = counted(dry_run(name))
    outcome = run_grid(load_spec(name), tmp_path, SerialExecutor(instant_cell), quiet=True)
    assert cells == len(outcome.plan.cells) == len(outcome.records) == outcome.ran
    assert trainings == len(shared_tasks(outcome.plan.to_run)) <= cells
    assert not (tmp_path / "cells").exists() or len(list((tmp_path / "cells").glob("*.json"))) == cells


def test_a_tiny_grid_runs_the_cells_and_trainings_its_dry_run_says(tmp_path):
    grid = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        epochs = 1
        lambda = [0, 0.1]
        alpha = [0.1, 0.5]
        rule = ["paper", "sgd"]
        [[also]]
        variant = "naive"
        lambda = 0
        alpha = 0.5
        rule = "paper"
    """)
    output = dry_run(str(grid))
    assert counted(output) == (9, 6)  # the 4 cells at lambda 0 under gather train once; naive's once more
    assert "3 cells at lambda 0 share the training of another" in output
    outcome = run_grid(load_spec(grid), tmp_path / "run", SerialExecutor(), quiet=True)
    records = outcome.records.values()
    assert len(records) == 9 and outcome.status_counts() == {"ok": 9}
    assert sum(r.get(SHARES_TRAINING_WITH) is None for r in records) == 6


def test_the_dry_run_says_where_each_set_lands_and_the_scope_confines_it():
    everywhere = dry_run("losses", "--set", "head=softmax,arcface", "--set", "seed=0,1")
    assert "--set head: [axes]; replaces head=softmax in [[also]] 1" in everywhere
    assert "--set seed: [axes]; reaches [[also]] 1 through [axes]" in everywhere
    assert counted(everywhere)[0] == 2 * 3 * 2 * 2 + 2 * 2 * 2 * 2  # heads x lambdas x feat_dims x seeds + pairs
    confined = dry_run("losses", "--set", "head=softmax,arcface", "--set", "seed=0,1", "--set-scope", "main")
    assert "--set head: [axes] only (--set-scope main" in confined
    assert counted(confined)[0] == 2 * 3 * 2 * 2 + 1 * 2 * 2 * 5  # [[also]] keeps head=softmax and the 5 seeds
    spec = load_spec("losses").with_overrides({"head": ["arcface"]}, "main")
    assert spec.also[0]["head"] == ["softmax"] and "--set-scope main" in spec.to_toml().splitlines()[0]


def test_a_main_scope_set_of_a_key_the_axes_do_not_name_is_refused():
    result = CliRunner().invoke(main, ["grid", "losses", "--dry-run", "--set", "epochs=2", "--set-scope", "main"])
    assert result.exit_code == 1 and "epochs is not an axis of the grid's [axes]" in result.output


def test_the_dry_run_counts_cells_per_value_of_each_varied_key():
    output = dry_run("default")
    assert "  lambda      0 x60, 0.001 x60, 0.01 x102, 0.1 x60, 1 x102" in output
    assert "  [[also]] 2  lambda 2 x rule 2 = 4 cells (at variant=fused, alpha=0.5, seed=0)" in output
    assert "334 trainings: 50 cells at lambda 0 share the training of another" in output


def test_the_list_gives_each_bundled_grid_its_cells_and_an_estimate():
    result = CliRunner().invoke(main, ["grid", "--list"])
    assert result.exit_code == 0, result.output
    for name in bundled_grids():
        (line,) = [line for line in result.output.splitlines() if line.startswith(f"{name} ")]
        assert int(line.split()[1].replace(",", "")) == len(grid_cells(load_spec(name)))
        assert "about " in line and "CPU-seconds" in line


def test_a_cells_estimate_scales_with_its_epochs_and_adds_what_its_variant_costs_per_step():
    one = cell_cost(CellConfig(epochs=1, device="cpu").to_dict())
    two = cell_cost(CellConfig(epochs=2, device="cpu").to_dict())
    assert two.training_s == pytest.approx(2 * one.training_s) and two.rest_s == one.rest_s
    fused = cell_cost(CellConfig(epochs=1, device="cpu", variant="fused").to_dict())
    steps = -(-round(1797 * 0.8) // 64)  # digits: 1,437 training images in batches of 64
    per_step = get_variant("fused").cpu_step_s + get_variant("fused").cpu_update_step_s
    assert fused.training_s == pytest.approx(one.training_s + steps * per_step, rel=0.01)
    assert cell_cost({**CellConfig(device="cpu").to_dict(), "device": "cuda"}) is None


def test_two_workers_halve_the_estimate_of_many_equal_cells():
    tasks = shared_tasks(grid_cells(load_spec("default").with_overrides({"variant": ["gather"]})))
    one, two = grid_estimate(tasks, 1), grid_estimate(tasks, 2)
    assert one.cpu_s > 0 and one.unknown == 0
    assert two.wall_s == pytest.approx(one.wall_s / 2, rel=0.05)
