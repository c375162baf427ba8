"""Run a suite into RUN_DIR: numerics, timed points, training steps; tables, provenance; resumable.

    RUN_DIR/run.json                 the folder's kind, "bench" (a grid run folder is refused)
    RUN_DIR/bench.parquet/.csv       one row per variant x point (columns: schema.BENCH_COLUMNS)
    RUN_DIR/numerics.parquet/.csv    one row per variant x dtype x convention x feature norm
    RUN_DIR/train_step.parquet/.csv  one row per workload x classes x variant
    RUN_DIR/provenance.json          ablate.provenance.collect(), times, the suite, copy bandwidth
    RUN_DIR/parts/<stage>/<key>.json each finished unit while the run is under way: a rerun into
                                     RUN_DIR after an interruption resumes; a finished run removes them
File names and columns are declared in ablate.runs.schema; the folder is written through ablate.runs.folder.
A row that could not be measured keeps NaN timings and says why in `note`: over the memory budget
(checked before its inputs are allocated),
out of the time budget, or the error it raised (out of memory, a dtype the variant refuses, a
kernel that fails to compile). One variant's error at one point never stops the study; the
summary prints every note.
"""

import math
import os
import time
from dataclasses import asdict

import pandas as pd
import torch
from tqdm import tqdm

from ablate.bench.cost import bytes_moved, memory_skip_note
from ablate.bench.numerics import numerics_case
from ablate.bench.suites import Point, Suite, sweep_variants
from ablate.bench.timer import copy_bandwidth_gb_per_s, peak_memory_bytes, quantiles_ms, time_interleaved, warm_up
from ablate.bench.train_step import train_step_case, workload_cases
from ablate.bench.workloads import call, clustered_inputs, input_bytes
from ablate.failures import error_note
from ablate.loss.dtypes import DTYPES
from ablate.runs import schema
from ablate.runs.folder import RunFolder
from ablate.runs.parts import PartStore
from ablate.runs.schema import BENCH_COLUMNS, NUMERICS_COLUMNS, TRAIN_STEP_COLUMNS


def memory_budget_bytes(device: torch.device, fraction: float) -> float:
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return fraction * total


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _blank_row(variant: str, point: Point, device: torch.device, note: str = "") -> dict:
    """A bench row with the point's coordinates and NaN readings."""
    return {**{c: math.nan for c in BENCH_COLUMNS}, "variant": variant, "mode": point.mode, "rule": point.rule,
            "batch": point.batch, "classes": point.classes, "dim": point.dim, "dtype": point.dtype,
            "device": device.type, "note": note}


def measure_point(point: Point, variants, device: torch.device, suite: Suite, copy_gb_per_s: float) -> list:
    """One bench row per variant at `point`: all of them timed in the same process, interleaved."""
    dtype = DTYPES[point.dtype]
    budget = memory_budget_bytes(device, suite.memory_fraction)
    inputs = input_bytes(point.batch, point.classes, point.dim, dtype)
    if inputs > budget:  # checked before anything is allocated
        note = f"skipped: its inputs need about {inputs / 1e9:.1f} GB, over the memory budget of {budget / 1e9:.1f} GB"
        return [_blank_row(v, point, device, note) for v in variants]
    rule = point.rule or "paper"
    features, labels, centers = clustered_inputs(point.batch, point.classes, point.dim, dtype, device)
    rows, fns = {}, {}
    for variant in variants:
        sizes = (variant, point.mode, point.batch, point.classes, point.dim, dtype)
        row = rows[variant] = _blank_row(variant, point, device, memory_skip_note(*sizes, budget))
        if row["note"]:
            continue
        try:
            fn = call(variant, point.mode, features, labels, centers, rule=rule)
            warm_up(fn, device)
            row["peak_mem_bytes"] = peak_memory_bytes(fn, device)
            moved = bytes_moved(*sizes, rule)
            row["bytes"] = math.nan if moved is None else moved  # a variant without a byte model: no GB/s
        except Exception as exc:  # recorded in the row's note; see the module docstring
            row["note"] = error_note(exc)
        else:
            fns[variant] = fn
    try:
        times = time_interleaved(fns, device, suite.timing)
    except Exception as exc:  # recorded in the row's note; see the module docstring
        times = {}
        for variant in fns:
            rows[variant]["note"] = error_note(exc)
    for variant, t in times.items():
        row = rows[variant]
        row.update(quantiles_ms(t))
        seconds = row["time_ms_p50"] * 1e-3
        row["samples_per_s"] = point.batch / seconds
        row["gb_per_s"] = row["bytes"] / seconds / 1e9
        row["roof_fraction"] = row["gb_per_s"] / copy_gb_per_s  # NaN on the CPU, where no copy is timed
    del fns, features, labels, centers
    _free(device)
    return [rows[v] for v in variants]


def _time_left(suite: Suite, started: float) -> bool:
    return suite.time_budget_s is None or time.monotonic() - started < suite.time_budget_s


def bench_table(suite: Suite, device: torch.device, store: PartStore, copy_gb_per_s: float, *, started: float,
                progress: bool = True) -> pd.DataFrame:
    """One row per variant x point of the suite's sweeps; points past the time budget say so in `note`."""
    rows = []
    for sweep, point in tqdm(suite.points(), desc="bench", disable=not progress):
        variants = sweep_variants(suite, sweep)
        if not variants:
            continue
        if not _time_left(suite, started):  # not stored: a rerun measures these
            note = f"skipped: the suite's time budget of {suite.time_budget_s:.0f} s was spent"
            rows += [_blank_row(v, point, device, note) for v in variants]
            continue
        key = f"{point.key}_{device.type}_{'-'.join(variants)}"
        rows += store.rows("bench", key, lambda: measure_point(point, variants, device, suite, copy_gb_per_s))
    return pd.DataFrame(rows, columns=list(BENCH_COLUMNS))


def numerics_table(suite: Suite, device: torch.device, store: PartStore, *, progress: bool = True) -> pd.DataFrame:
    """Loss and gradient errors of the suite's checked variants, per dtype x convention x feature norm."""
    spec = suite.numerics
    assert spec is not None, "numerics are measured for a suite that declares them (run_suite)"
    variants = suite.checked_variants or suite.resolved_variants
    cases = [(dt, conv, norm) for dt in spec.dtypes for conv in spec.conventions for norm in spec.feature_norms]
    rows = []
    for dtype, convention, norm in tqdm(cases, desc="numerics", disable=not progress):
        key = f"{dtype}_{convention}_norm{norm:g}_{device.type}_{'-'.join(variants)}"
        rows += store.rows("numerics", key, lambda: numerics_case(variants, dtype, convention, norm, spec, device))
    return pd.DataFrame(rows, columns=list(NUMERICS_COLUMNS))


def train_step_table(suite: Suite, device: torch.device, store: PartStore, *, progress: bool = True) -> pd.DataFrame:
    """One row per variant x workload case; a case that cannot run (out of memory, say) gets rows saying
    why, and is not stored, so that a rerun tries it again."""
    assert suite.train_step is not None, "training steps are measured for a suite that declares them (run_suite)"
    variants = suite.resolved_variants
    rows = []
    cases = workload_cases(suite.train_step)
    for workload, batch, classes, dim in tqdm(cases, desc="train step", disable=not progress):
        key = f"{workload}_b{batch}_c{classes}_d{dim}_{device.type}_{'-'.join(variants)}"
        try:
            rows += store.rows("train_step", key, lambda: train_step_case(workload, batch, classes, dim, variants,
                                                                          device, suite.timing))
        except Exception as exc:  # recorded in the row's note; see the module docstring
            rows += [{"workload": workload, "variant": v, "batch": batch, "classes": classes, "dim": dim,
                      "device": device.type, "note": error_note(exc)} for v in variants]
            _free(device)
    return pd.DataFrame(rows, columns=list(TRAIN_STEP_COLUMNS))


def run_suite(suite: Suite, device: torch.device, run_dir, *, progress: bool = True) -> dict:
    """Measure `suite` on `device` into run_dir (see the module docstring); returns the tables by name.

    Units stored under run_dir/parts by an interrupted run are reused, so it resumes where it stopped.
    """
    with RunFolder.writing(run_dir, "bench") as run:
        store = run.parts({"suite": asdict(suite), "device": str(device), "git_commit": run.stamp["git_commit"]})
        if store.discarded and progress:
            tqdm.write(f"{run.path}: discarded {store.discarded} stored parts of a different study (suite, device or "
                       "code)")
        started = time.monotonic()
        if suite.numerics is not None:
            run.tables[schema.NUMERICS] = numerics_table(suite, device, store, progress=progress)
        copy = math.nan
        if device.type == "cuda":
            measured = store.rows("copy", "bandwidth",
                                  lambda: [{"copy_gb_per_s": copy_bandwidth_gb_per_s(device, suite.timing)}])
            copy = measured[0]["copy_gb_per_s"]
        run.tables[schema.BENCH] = bench_table(suite, device, store, copy, started=started, progress=progress)
        if suite.train_step is not None:
            run.tables[schema.TRAIN_STEP] = train_step_table(suite, device, store, progress=progress)
        run.provenance.update(device_type=device.type, suite=asdict(suite), copy_gb_per_s=copy,
                              memory_budget_bytes=memory_budget_bytes(device, suite.memory_fraction))
    return run.tables
