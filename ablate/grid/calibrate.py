"""Measure the costs the time estimates read (ablate.grid.estimate), on this machine, in CPU seconds of one torch
thread (time.process_time, so that other processes on a busy machine do not count):

    OMP_NUM_THREADS=1 TORCHINDUCTOR_COMPILE_THREADS=1 TRITON_INTERPRET=1 python -m ablate.grid.calibrate

prints each measured cost with the line of the registry entry it belongs in (a dataset's Cost, a head's, a pair
loss's and a variant's step_s, a variant's compile_s, ablate.grid.estimate's process and follower costs). One thread,
and the compiler's work in this process (TORCHINDUCTOR_COMPILE_THREADS=1), so that every second is counted; the
interpreter (TRITON_INTERPRET=1) so that the Triton variant runs on the CPU. Each cost is the median of REPEATS
runs; the model of a cost (what scales with epochs, samples and steps) is ablate.grid.estimate's.
"""

import math
import os
import statistics
import sys
import time

REPEATS = 3
REQUIRED_ENV = {"OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1", "TRITON_INTERPRET": "1"}
# epochs measured per cell: enough to see a steady epoch, few enough for LeNet++ on one thread
EPOCHS = {"mlp": 4, "lenetpp": 2}
# (dataset, model) pairs left unmeasured: LeNet++ on Fashion-MNIST's 60,000 images takes about 10 minutes an epoch on
# one thread; its cells get no estimate
UNMEASURED = (("fashion-mnist", "lenetpp"),)


def _timed_cell(options: dict) -> tuple:
    """(CPU seconds of a steady epoch, CPU seconds of the rest of the cell, steps of an epoch) of one cell."""
    from ablate.train import CellConfig, run_cell

    config = CellConfig.from_dict({"device": "cpu", **options})
    marks = [time.process_time()]
    run_cell(config, on_epoch=lambda epoch, epochs: marks.append(time.process_time()))
    marks.append(time.process_time())
    epochs = config.epochs
    epoch_s = (marks[epochs] - marks[1]) / (epochs - 1)  # epochs 2..E: the first carries the loading
    rest = (marks[-1] - marks[0]) - epochs * epoch_s
    return epoch_s, rest, _steps(config)


def _steps(config) -> int:
    from ablate.data import dataset_size

    examples, _, _ = dataset_size(config.dataset, num_classes=config.num_classes, synthetic_dim=config.synthetic_dim,
                                  samples_per_class=config.samples_per_class)
    return math.ceil(examples * (1 - config.test_fraction) / config.batch_size)


def _median(options: dict) -> tuple:
    runs = [_timed_cell(options) for _ in range(REPEATS)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2]


def _first_cell_s(options: dict) -> float:
    """CPU seconds of a cell in a fresh process (imports and first calls included): a grid worker's first cell."""
    import subprocess

    code = ("import time; t = time.process_time(); from ablate.train import CellConfig, run_cell; "
            f"run_cell(CellConfig.from_dict({options!r})); print(time.process_time() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _datasets_and_models() -> list:
    """(dataset, model) of every dataset with every model that takes its examples."""
    from ablate.data import DATASETS, dataset_size
    from ablate.models import MODELS, resolve_model_name

    pairs = []
    for source in DATASETS:
        _, shape, _ = dataset_size(source.name)
        for model in MODELS:
            if model.picks is None:
                try:
                    resolve_model_name(model.name, shape)
                except ValueError:
                    continue
                pairs.append((source.name, model.name))
    return pairs


def main() -> None:
    wrong = {k: os.environ.get(k) for k, v in REQUIRED_ENV.items() if os.environ.get(k) != v}
    if wrong:
        sys.exit(f"run with {' '.join(f'{k}={v}' for k, v in REQUIRED_ENV.items())} (got {wrong})")
    import torch

    from ablate.loss import DEFAULT_VARIANT, available_variants, get_variant
    from ablate.objectives import HEADS, NO_PAIR_LOSS, PAIR_LOSSES
    from ablate.provenance import cpu_model
    from ablate.train import CellConfig, run_cell
    from ablate.train.cell import run_shared_cells

    torch.set_num_threads(1)
    print(f"# {cpu_model()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start")
    for dataset, model in _datasets_and_models():
        if (dataset, model) in UNMEASURED:
            print(f"# {dataset} x {model}: not measured (UNMEASURED)")
            continue
        epoch_s, rest, _ = _median({"lambda": 0.1, "dataset": dataset, "model": model, "epochs": EPOCHS[model]})
        print(f"{dataset} x {model}: epoch_s {epoch_s:.3g}, rest_s {rest:.3g}", flush=True)
    digits = {"lambda": 0.1, "dataset": "digits", "epochs": EPOCHS["mlp"], "lr": 0.01}
    softmax_64, _, steps = _median({**digits, "feat_dim": 64})
    for head in HEADS:  # a dict of names
        epoch_s, _, _ = _median({**digits, "feat_dim": 64, "head": head})
        print(f"head {head}: step_s {(epoch_s - softmax_64) / steps:.3g}", flush=True)
    softmax_2, rest_2, steps = _median(digits)
    for pair in PAIR_LOSSES:
        if pair != NO_PAIR_LOSS:
            epoch_s, _, _ = _median({**digits, "pair_loss": pair})
            print(f"pair loss {pair}: step_s {(epoch_s - softmax_2) / steps:.3g}", flush=True)
    for variant in available_variants("cpu"):
        if variant != DEFAULT_VARIANT:
            for rule in ("paper", "sgd"):
                epoch_s, _, _ = _median({**digits, "variant": variant, "rule": rule})
                print(f"variant {variant} ({rule} rule): step_s {(epoch_s - softmax_2) / steps:.3g}", flush=True)
    lead = CellConfig.from_dict({**digits, "lambda": 0.0, "device": "cpu"})
    followers = [CellConfig.from_dict({**digits, "lambda": 0.0, "device": "cpu", "alpha": alpha, "rule": rule})
                 for alpha in (0.1, 1.0) for rule in ("paper", "sgd")]
    alone, shared = [], []
    for _ in range(REPEATS):
        start = time.process_time()
        run_cell(lead)
        alone.append(time.process_time() - start)
        start = time.process_time()
        run_shared_cells(lead, followers)
        shared.append(time.process_time() - start)
    follower_s = (statistics.median(shared) - statistics.median(alone)) / len(followers)
    print(f"follower: step_s {(follower_s - rest_2) / (steps * lead.epochs):.3g} (a follower's cell "
          f"{follower_s:.3g}, its evaluation {rest_2:.3g})", flush=True)
    cold = _first_cell_s({**digits, "device": "cpu"})
    print(f"process start (a fresh process's first cell, beyond the cell): "
          f"{cold - digits['epochs'] * softmax_2 - rest_2:.3g}", flush=True)
    for variant in available_variants("cpu"):
        if get_variant(variant).compiles:
            extra = _first_cell_s({**digits, "device": "cpu", "variant": variant}) - cold
            print(f"variant {variant}: compile_s {extra:.3g}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
