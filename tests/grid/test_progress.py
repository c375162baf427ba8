"""Progress inside cells: each finished epoch reaches the grid's bar, from this process and from local workers, and
the bar weighs each task by its estimated cost."""

import pytest

from ablate.grid import progress
from ablate.grid.executors import SerialExecutor, make_executor
from ablate.grid.progress import CostBar
from ablate.train import CellConfig

EPOCHS = 3


def tasks(*seeds) -> list:
    return [(f"cell{seed}", CellConfig(dataset="digits", epochs=EPOCHS, seed=seed, device="cpu").to_dict())
            for seed in seeds]


@pytest.fixture
def reports():
    """The (cell_id, epoch, epochs) this process's sink receives while the test runs."""
    received = []
    progress.report_to(lambda *report: received.append(report))
    yield received
    progress.report_to(None)


def test_a_cell_in_this_process_reports_each_epoch(reports, tmp_path):
    results = list(SerialExecutor().run(tasks(0), tmp_path))
    assert results[0].record["status"] == "ok"
    assert reports == [("cell0", epoch, EPOCHS) for epoch in range(1, EPOCHS + 1)]


def test_cells_in_local_workers_report_each_epoch_through_their_executor(reports, tmp_path):
    results = list(make_executor("local", workers=2).run(tasks(0, 1), tmp_path))
    assert {r.record["status"] for r in results} == {"ok"}
    assert sorted(reports) == [(f"cell{seed}", epoch, EPOCHS) for seed in (0, 1) for epoch in range(1, EPOCHS + 1)]


def test_the_bar_moves_each_task_by_its_cost_and_its_epochs():
    bar = CostBar(["a", "b"], {"a": (30.0, 0.9), "b": (10.0, 0.5)}, quiet=True)
    bar.epoch("a", 1, 3)
    assert bar.moved == {"a": pytest.approx(9.0), "b": 0.0}  # a third of a's training share: 30 x 0.9 / 3
    bar.epoch("a", 1, 3)  # a report twice moves nothing twice
    bar.epoch("unknown", 1, 1)  # nor does one of a task not in the bar
    bar.finished("b", cells=4)
    assert bar.moved == {"a": pytest.approx(9.0), "b": 10.0} and bar.cells_done == 4
    bar.close()
