"""What a grid will cost before it runs, from the costs the registries declare: each dataset's epoch per model and the
rest of its cell (ablate.data.registry, Cost), what a head, a pair loss and a variant add per training step
(ablate.objectives, ablate.loss.registry), a variant's compilation. All are CPU seconds of one torch thread, measured
on MEASURED_ON by `python -m ablate.grid.calibrate`.

    cell_cost(config)            CellCost(training_s, rest_s) of one cell on the CPU; None where nothing is measured
    task_costs(tasks)            {task id: (seconds, training share)} of a grid's tasks (a shared training counts its
                                 followers' evaluations), for the progress bar; None if a cell has no estimate
    grid_estimate(tasks, workers)   Estimate: CPU seconds and the wall time on `workers` idle cores

The model: an epoch costs the dataset's measured epoch for the model, scaled by the cell's examples (the synthetic
sizes, held-out classes) over those it was measured on, plus the steps of the epoch times what the head, the pair
loss and the variant (its update, for the rules it fuses) add per step; a cell is its epochs, plus the rest (loading,
evaluation; scaled by the examples too). The batch size, the test fraction and the feature size are not modelled (at
2 to 64 features the MLP's epoch on digits did not move: ablate.grid.calibrate); a cell on a GPU has no estimate.
A fresh worker process pays PROCESS_START_S before its first cell, and each compiling variant its compile_s once.
"""

import math
from dataclasses import dataclass

from ablate.data import DATASETS
from ablate.data.registry import DataOptions
from ablate.grid.execute import task_cells
from ablate.loss.devices import AUTO, device_present
from ablate.loss.registry import get_variant
from ablate.objectives import HEADS, PAIR_LOSSES

MEASURED_ON = ("an AMD EPYC of 2 cores shared with other work (load average 14-15), in CPU seconds of one torch thread "
               "(python -m ablate.grid.calibrate)")
PROCESS_START_S = 4.16  # a fresh process's first cell beyond the cell: imports and first calls
FOLLOWER_STEP_S = 0.00022  # what a follower (ablate.train.followers) adds per training step: its center loss, update


@dataclass(frozen=True)
class CellCost:
    """training_s: the epochs; rest_s: loading the data and evaluating (CPU seconds of one thread)."""

    training_s: float
    rest_s: float

    @property
    def seconds(self) -> float:
        return self.training_s + self.rest_s


def _on_the_cpu(device: str) -> bool:
    return device == "cpu" or (device == AUTO and not device_present("cuda"))


def _examples_and_steps(config: dict) -> tuple:
    """(the cell's examples over those its dataset's cost was measured on, training steps of an epoch)."""
    source = DATASETS.get(config["dataset"])
    examples, _ = source.size(DataOptions(num_classes=config["num_classes"], synthetic_dim=config["synthetic_dim"],
                                          samples_per_class=config["samples_per_class"]))
    classes = source.class_count(config["num_classes"])
    trained = examples * (1 - config["test_fraction"]) * (classes - config["holdout_classes"]) / classes
    scale = examples * (classes - config["holdout_classes"]) / classes / source.size(DataOptions())[0]
    return scale, math.ceil(trained / config["batch_size"])


def cell_cost(config: dict) -> CellCost | None:
    """The cost of the cell of `config` (a resolved config by record key) on the CPU; None for a cell on another
    device, or on a dataset or model without a measured cost."""
    cost = DATASETS.get(config["dataset"]).cost
    if not _on_the_cpu(config["device"]) or cost is None or config["model"] not in cost.epoch_s:
        return None
    scale, steps = _examples_and_steps(config)
    variant = get_variant(config["variant"])
    per_step = (HEADS[config["head"]].step_s + PAIR_LOSSES[config["pair_loss"]].step_s + variant.cpu_step_s
                + (variant.cpu_update_step_s if variant.fuses(config["rule"]) else 0.0))
    epoch = cost.epoch_s[config["model"]] * scale + steps * per_step
    return CellCost(config["epochs"] * epoch * config["nproc"], cost.rest_s[config["model"]] * scale)


def _follower_s(config: dict) -> float | None:
    """What a follower adds to the training it shares: its center steps and its own evaluation."""
    cost = cell_cost(config)
    if cost is None:
        return None
    return cost.rest_s + config["epochs"] * _examples_and_steps(config)[1] * FOLLOWER_STEP_S


def task_cost(config: dict) -> tuple | None:
    """(seconds, the share of them training takes) of a task (a cell, or a lead with its followers); None where a
    cell has no estimate."""
    lead, followers = task_cells(config)
    cost = cell_cost(lead)
    extra = [_follower_s(c) for _, c in followers]
    if cost is None or None in extra:
        return None
    seconds = cost.seconds + sum(extra)  # type: ignore[arg-type]
    return seconds, cost.training_s / seconds if seconds > 0 else 1.0


def task_costs(tasks: list) -> dict | None:
    """{task id: (seconds, training share)} of (task id, config) pairs; None if any cell has no estimate."""
    costs = {task_id: task_cost(config) for task_id, config in tasks}
    return None if None in costs.values() else costs


@dataclass(frozen=True)
class Estimate:
    """cpu_s: CPU seconds of one thread for the tasks, process starts and compilations included; wall_s: on
    `workers` idle cores, one thread each (at least the longest task); unknown: cells without an estimate."""

    cpu_s: float
    wall_s: float
    workers: int
    unknown: int

    def text(self) -> str:
        """'about 2 min 50 s with 2 workers (340 CPU-seconds of one thread on idle cores)', with what is unknown."""
        if self.cpu_s == 0 and self.unknown:
            return f"no estimate ({self.unknown} cells on a device, dataset or model without a measured cost)"
        what = (f"about {duration_text(self.wall_s)} with {self.workers} worker{'s' if self.workers != 1 else ''} "
                f"({self.cpu_s:,.0f} CPU-seconds of one thread; idle cores)")
        if self.unknown:
            what += f", and {self.unknown} cells without an estimate (a GPU, or a cost not measured)"
        return what


def grid_estimate(tasks: list, workers: int) -> Estimate:
    """The estimate of running `tasks` ((task id, config) pairs, ablate.grid.sharing) with `workers` local workers."""
    known, unknown, compiling = [], 0, set()
    for _, config in tasks:
        cost = task_cost(config)
        if cost is None:
            unknown += 1 + len(task_cells(config)[1])
            continue
        known.append(cost[0])
        if get_variant(config["variant"]).compiles and _on_the_cpu(config["device"]):
            compiling.add(config["variant"])
    if not known:
        return Estimate(0.0, 0.0, workers, unknown)
    processes = min(workers, len(known))
    once = processes * (PROCESS_START_S + sum(get_variant(v).compile_s for v in compiling))
    cpu = sum(known) + once
    wall = max(cpu / processes, max(known) + once / processes)
    return Estimate(cpu, wall, workers, unknown)


def duration_text(seconds: float) -> str:
    """'45 s', '2 min 50 s', '1 h 05 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
