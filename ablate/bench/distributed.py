"""`ablate bench world --world N`: time, bytes communicated and peak memory per step of center loss across ranks.

For each world size W (ranks started by ablate.distributed.launch), form and class count, one point per mode:
    update  one center update (rule paper) of the global batch of B rows, B/W on each rank
    full    the loss and its backward w.r.t. each rank's features
Forms: replicated and sharded (ablate.distributed.centers), and for update `dense`: the replicated step by an
all-reduce of a dense (C, D) delta and (C,) counts, the form ablate.distributed.centers avoids.

    RUN_DIR/distributed.parquet/.csv  one row per world x form x mode x classes (columns: DISTRIBUTED_COLUMNS)
    RUN_DIR/provenance.json
time_ms_*: quantiles over steps of the slowest rank's time (every step starts at a barrier).
bytes_per_step: received per rank by the step's collectives, from their sizes (ablate.distributed.groups).
peak_mem_bytes: the largest rank's peak memory during the point beyond what it held before building the
centers: CUDA's max_memory_allocated, on the CPU the peak resident set (Linux VmHWM, reset per point).
centers_bytes_per_rank: the rank's (C, D) table or shard.
"""

import gc
import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist

from ablate.bench.allocator import fix_malloc_thresholds
from ablate.bench.timer import quantiles_ms
from ablate.distributed.centers import FORMS, form_placement
from ablate.distributed.groups import all_sum_, count_traffic
from ablate.distributed.launch import check_world, rank_device, run_ranks
from ablate.loss import CenterLoss
from ablate.loss.dtypes import DTYPES
from ablate.runs.folder import RunFolder
from ablate.runs.schema import DISTRIBUTED, DISTRIBUTED_COLUMNS

MODES = ("update", "full")
DENSE = "dense"  # the replicated update by an all-reduce of a dense (C, D) delta
WARMUP_STEPS = 2
OWN_MAPPING_BYTES = 1 << 20  # tensors from this size up are mappings of their own, returned when freed
ALPHA = 0.5


@torch.no_grad()
def dense_update(centers, features, labels, *, alpha: float, group=None) -> None:
    """Eq. 4 on every rank by a sum over ranks of dense per-class sums: (C, D) + (C,) per step, whatever B.

    centers (C, D) the same on every rank; features (b_r, D), labels (b_r,) this rank's slice. In place
    throughout: one (C, D + 1) table besides the centers.
    """
    sums = torch.zeros(centers.shape[0], centers.shape[1] + 1, dtype=centers.dtype, device=centers.device)  # (C, D+1)
    sums[:, :-1].index_add_(0, labels, features)
    sums[:, -1].index_add_(0, labels, torch.ones_like(labels, dtype=centers.dtype))
    all_sum_(sums, group)
    counts, step = sums[:, -1:], sums[:, :-1]  # (C, 1) global n_j; (C, D) sum_{y_i = j} x_i
    step.addcmul_(counts, centers, value=-1).div_(1 + counts)  # -delta_j / (1 + n_j)
    centers.add_(step, alpha=alpha)


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak(device: torch.device) -> float:
    """Start a peak-memory window; returns the baseline it is measured from."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
        return _rss_bytes("VmRSS")
    except OSError:
        return math.nan


def _peak(device: torch.device, baseline: float) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - baseline
    return _rss_bytes("VmHWM") - baseline if not math.isnan(baseline) else math.nan


def _step(form: str, mode: str, crit: CenterLoss, features: torch.Tensor, labels: torch.Tensor, group):
    if mode == "update" and form == DENSE:
        return lambda: dense_update(crit.centers, features, labels, alpha=ALPHA, group=group)
    if mode == "update":
        return lambda: crit.update(features, labels)

    def full():
        features.grad = None
        crit(features, labels).backward()
    features.requires_grad_(True)
    return full


def measure_point(rank: int, world: int, point: dict, steps: int, device: torch.device) -> dict:
    """One row: every rank runs `steps` timed steps of point (form, mode, batch, classes, dim, dtype)."""
    dtype = getattr(torch, point["dtype"])
    baseline = _reset_peak(device)
    torch.manual_seed(0)
    group = dist.new_group()
    form = "replicated" if point["form"] == DENSE else point["form"]
    crit = CenterLoss(point["classes"], point["dim"], rule="paper", alpha=ALPHA, dtype=dtype, device=device,
                      placement=form_placement(form, point["classes"], group))
    gen = torch.Generator(device).manual_seed(rank)
    rows = len(torch.arange(point["batch"]).tensor_split(world)[rank])
    features = torch.randn(rows, point["dim"], generator=gen, device=device, dtype=dtype)  # (b_r, D)
    labels = torch.randint(0, point["classes"], (rows,), generator=gen, device=device)  # (b_r,)
    step = _step(point["form"], point["mode"], crit, features, labels, group)
    for _ in range(WARMUP_STEPS):
        step()
    with count_traffic() as traffic:
        step()
    times = []
    for _ in range(steps):
        dist.barrier(group)
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    slowest = torch.tensor(times, dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    peak = torch.tensor([_peak(device, baseline), crit.centers.numel() * crit.centers.element_size()],
                        dtype=torch.float64)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    del crit, features, labels, step
    dist.destroy_process_group(group)
    return {**point, "world": world, "device": device.type, **quantiles_ms(slowest.numpy() * 1e3),
            "bytes_per_step": traffic.bytes, "collectives_per_step": traffic.collectives,
            "centers_bytes_per_rank": int(peak[1]), "peak_mem_bytes": float(peak[0]), "note": ""}


def bench_ranks(rank: int, world: int, points: list, steps: int, device: str) -> list:
    """Every point in this rank (a collective over all ranks); rank 0's rows are the result."""
    own_device = rank_device(device, rank)
    # glibc's heap keeps freed pages resident: with every tensor above OWN_MAPPING_BYTES a mapping of its own, the
    # peak resident set of a point is that point's own (on another C library it may include earlier points').
    fix_malloc_thresholds(mmap_threshold=OWN_MAPPING_BYTES)
    rows = []
    if points:
        measure_point(rank, world, points[0], 1, own_device)  # one-time costs (first collectives, kernels) off the rows
    for point in points:
        try:
            rows.append(measure_point(rank, world, point, steps, own_device))
        except torch.OutOfMemoryError as exc:  # every rank at the same point holds as much: all of them say so
            rows.append({**point, "world": world, "device": own_device.type, "note": f"OutOfMemoryError: {exc}"})
    return rows


def world_points(forms, modes, batch, classes, dim, dtype: str) -> list:
    """The points of one world size: dense only for update; smallest tables first."""
    return [{"form": form, "mode": mode, "batch": b, "classes": c, "dim": d, "dtype": dtype}
            for c in sorted(classes) for b in batch for d in dim for mode in modes for form in forms
            if form != DENSE or mode == "update"]


def run_world_bench(worlds, run_dir, *, forms=(*FORMS, DENSE), modes=MODES, batch=(256,), classes=(100_000, 1_000_000),
                    dim=(128,), dtype: str = "float32", steps: int = 20, device: torch.device = torch.device("cpu"),
                    threads: int = 1) -> pd.DataFrame:
    """Measure every world size in `worlds` into run_dir (see the module docstring); returns the table.

    threads: torch threads per rank, the same for every world size (1: W ranks use W cores).
    """
    for name, values, valid in (("mode", modes, MODES), ("form", forms, (*FORMS, DENSE))):
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise ValueError(f"unknown {name}(s) {', '.join(unknown)} for --world; expected among {', '.join(valid)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} for --world; expected one of {', '.join(DTYPES)}")
    # every rank holds a replicated (C, D) table, its gradient or delta and the update's temporaries
    per_rank = 4 * max(classes) * max(dim) * torch.empty((), dtype=getattr(torch, dtype)).element_size()
    for world in worlds:
        check_world(world, device, per_rank, option="--world")
    # the folder is claimed after every argument is checked: a refused run leaves no folder
    with RunFolder.writing(run_dir, "distributed") as run:
        rows = []
        for world in worlds:
            points = world_points(forms, modes, batch, classes, dim, dtype)
            rows += run_ranks(bench_ranks, world, (points, steps, str(device)), device=device, threads=threads)[0]
        run.tables[DISTRIBUTED] = pd.DataFrame(rows, columns=list(DISTRIBUTED_COLUMNS))
        run.provenance.update(device_type=torch.device(device).type, steps=steps, threads_per_rank=threads)
    return run.tables[DISTRIBUTED]
