"""Progress inside cells: each finished epoch, from wherever a cell trains to the grid's progress line, which weighs
the cells by their estimated cost (ablate.grid.estimate).

    report_to(sink)                 where this process's epochs go: sink(cell_id, epoch, epochs) (the grid: its bar's;
                                    a local worker: its executor's queue)
    with reporting(cell_id): ...    the cell this process trains now (ablate.grid.execute)
    epoch_done(epoch, epochs)       what the training calls after each epoch (ablate.train.run_cell's on_epoch)
    relay(cell_id, epoch, epochs)   a worker's report, handed on to this process's sink (by its executor)
    CostBar(task_ids, costs, quiet) the grid's bar: total = the cells' estimated seconds, moved by epochs and cells

A cell that trains in the grid's own process reports straight to the bar; a local worker process reports through a
queue its executor drains into `relay` (ablate.grid.executors); a cell on Ray reports nothing until it ends.
"""

from collections.abc import Callable
from contextlib import contextmanager

from tqdm.auto import tqdm

_sink: Callable[[str, int, int], object] | None = None  # where this process's epochs go
_current: str | None = None  # the cell this process trains now


def report_to(sink: Callable[[str, int, int], object] | None) -> None:
    """Send this process's epochs to sink(cell_id, epoch, epochs) from now on (None: nowhere)."""
    global _sink
    _sink = sink


@contextmanager
def reporting(cell_id: str):
    """Epochs finished in the block are `cell_id`'s."""
    global _current
    _current = cell_id
    try:
        yield
    finally:
        _current = None


def epoch_done(epoch: int, epochs: int) -> None:
    """The current cell finished `epoch` of `epochs`; a sink that fails (a queue closed under an interrupted grid)
    costs the training nothing."""
    if _current is not None:
        try:
            relay(_current, epoch, epochs)
        except (OSError, ValueError):
            pass


def relay(cell_id: str, epoch: int, epochs: int) -> None:
    """Hand a report on to this process's sink, if it has one."""
    if _sink is not None:
        _sink(cell_id, epoch, epochs)


class CostBar:
    """The grid's progress bar over the tasks to run. costs: task id -> (estimated seconds, the share of them its
    training takes) (ablate.grid.estimate.task_cost), or None when some cell has no estimate: each task then weighs
    one, all of it training. A task's training share moves with its epochs, the rest when it ends, so the bar's rate,
    and its ETA, are in the cells' own costs."""

    def __init__(self, task_ids: list, costs: dict | None, quiet: bool):
        costs = costs if costs is not None else dict.fromkeys(task_ids, (1.0, 1.0))
        self.weights = {i: seconds for i, (seconds, _) in costs.items()}
        self.training_share = {i: share for i, (_, share) in costs.items()}
        self.moved = dict.fromkeys(task_ids, 0.0)
        self.cells_done, self.cells = 0, 0
        # smoothing 0: the ETA from the average rate since the start, which the cost weights make the right one
        self.bar = tqdm(total=sum(self.weights[i] for i in task_ids) or None, disable=quiet or not task_ids,
                        desc="grid", smoothing=0,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}")

    def set_cells(self, cells: int) -> None:
        """The cells the tasks hold (a shared training counts each of its cells)."""
        self.cells = cells
        self.bar.set_postfix_str(f"{self.cells_done}/{self.cells} cells", refresh=False)

    def _move_to(self, task_id: str, share: float) -> None:
        target = self.weights[task_id] * share
        if target > self.moved[task_id]:
            self.bar.update(target - self.moved[task_id])
            self.moved[task_id] = target

    def epoch(self, task_id: str, epoch: int, epochs: int) -> None:
        """The task's training finished `epoch` of `epochs` (its evaluation, the rest, counts when it ends)."""
        if task_id not in self.moved:  # not a task of this bar's
            return
        self._move_to(task_id, self.training_share[task_id] * epoch / max(epochs, 1))

    def finished(self, task_id: str, cells: int) -> None:
        """The task ended, with `cells` records."""
        self.cells_done += cells
        self.bar.set_postfix_str(f"{self.cells_done}/{self.cells} cells", refresh=False)
        self._move_to(task_id, 1.0)

    def close(self) -> None:
        self.bar.close()
