"""`ablate bench`: `run`, a declared benchmark suite into RUN_DIR, and `world`, the distributed placements timed
across processes into RUN_DIR."""

import time
from pathlib import Path

import click
import pandas as pd
import torch

from ablate.analysis.numerics import FLOAT32_TOLERANCE, float32_failures
from ablate.bench.runner import run_suite
from ablate.bench.suites import SUITES, resolve_suite
from ablate.distributed.launch import RanksFailed
from ablate.io import check_writable
from ablate.limits import INT64_MAX, check_int_option
from ablate.loss.devices import AUTO, training_devices
from ablate.loss.dtypes import DTYPES
from ablate.loss.rules import RULES
from ablate.messages import say
from ablate.runs.manifest import check_kind
from ablate.runs.readers import read_provenance
from ablate.runs.schema import ERROR_COLUMNS, RunLockedError
from ablate.train.cell import resolve_device

VERSION_KEYS = ("gpu", "driver", "cuda", "cpu", "torch", "triton", "copy_gb_per_s")


def _comma_list(cast=str):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            values = tuple(cast(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list of {cast.__name__}s, got {value!r}") from None
        if cast is int:
            try:
                for v in values:
                    check_int_option(param.opts[0], v, low=-INT64_MAX - 1)  # the range of each option: its suite
            except ValueError as exc:
                raise click.BadParameter(str(exc)) from None
        return values
    return parse


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


def _checked_run_dir(run_dir: Path | None, setup: str, kind: str) -> Path:
    """--out, or runs/bench/<setup>-<time>; refused (naming --out) if not writable or a run of another kind."""
    run_dir = run_dir or Path("runs/bench") / f"{setup}-{pd.Timestamp.now():%Y%m%d-%H%M%S}"
    try:
        check_writable(run_dir, folder=True)
        check_kind(run_dir, kind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    return run_dir


def _print_notes(title: str, table: pd.DataFrame) -> None:
    noted = table[table["note"] != ""]
    if not noted.empty:
        click.echo(f"\n{title}: {len(noted)} not measured")
        for (variant, note), group in noted.groupby(["variant", "note"]):
            say(f"  {variant} x{len(group)}: {note}")


def _print_summary(tables: dict) -> None:
    bench = tables["bench"]
    timed = bench[bench["note"] == ""]
    if not timed.empty:
        pivot = timed.pivot_table(index=["mode", "rule", "dtype", "batch", "classes", "dim"], columns="variant",
                                  values="time_ms_p50")
        click.echo("\nmedian time per call (ms)\n" + pivot.to_string(float_format=lambda v: f"{v:.4g}"))
    _print_notes("bench", bench)
    if "numerics" in tables:
        num = tables["numerics"]
        worst = num.assign(worst_rel_error=num[list(ERROR_COLUMNS)].max(axis=1, skipna=False))
        pivot = worst.pivot_table(index=["dtype", "convention", "feature_norm"], columns="variant",
                                  values="worst_rel_error")
        click.echo("\nworst relative error against the float64 reference (loss, grad features, grad centers)\n"
                   + pivot.to_string(float_format=lambda v: f"{v:.2e}"))
        _print_notes("numerics", num)
    if "train_step" in tables:
        steps = tables["train_step"]
        measured = steps[steps["note"] == ""]
        if not measured.empty:
            pivot = measured.pivot_table(index=["workload", "batch", "classes"], columns="variant",
                                         values="samples_per_s")
            click.echo("\ntraining step, samples/s\n" + pivot.to_string(float_format=lambda v: f"{v:.4g}"))
        _print_notes("training step", steps)


@click.group("bench")
def bench_command():
    """Time center-loss variants (run) or the distributed placements of the centers across processes (world)."""


@bench_command.command("run")
@click.option("--suite", type=SUITES.choice(), default=None,
              help="Declared study: quick, cpu (make bench) or gpu (make bench-gpu). Default: cpu or gpu by device.")
@click.option("--device", type=click.Choice(training_devices()), default=AUTO, show_default=True)
@click.option("--variants", callback=_comma_list(), help="Comma list of variants (default: all that run on the device; "
              "an interpreted kernel (fused on the CPU) only when named, since it times Python, not the kernel).")
@click.option("--mode", "modes", callback=_comma_list(), help="Comma list of forward, backward, full, update.")
@click.option("--batch", callback=_comma_list(int), help="Comma list of batch sizes B.")
@click.option("--classes", callback=_comma_list(int), help="Comma list of class counts C.")
@click.option("--dim", callback=_comma_list(int), help="Comma list of feature dims D.")
@click.option("--dtype", "dtypes", callback=_comma_list(), help=f"Comma list of {', '.join(DTYPES)}.")
@click.option("--rule", type=RULES.choice(), default=None, help="Center-update rule for mode update (default paper).")
@click.option("--quick", is_flag=True, help="One short round per measurement: a smoke run, not a result.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="RUN_DIR for the tables (default runs/bench/<suite>-<device>-<time>); rerun into it to resume.")
def run_command(suite, device, variants, modes, batch, classes, dim, dtypes, rule, quick, run_dir):
    """Time center-loss variants per size, mode and dtype; check their numerics; time training steps.

    Writes RUN_DIR/bench, numerics and train_step as .parquet and .csv, and provenance.json.
    Any of --mode, --batch, --classes, --dim, --dtype replaces the suite's sweeps by one sweep over
    the given axes (the others: every mode, B 256, C 10,1000,10000, D 128, float32).
    Exits with status 1 if a variant's float32 results disagree with the float64 reference.
    """
    dev = _device(device)
    name = suite or ("gpu" if dev.type == "cuda" else "cpu")
    try:
        resolved = resolve_suite(name, dev, variants=variants, modes=modes, batch=batch, classes=classes, dim=dim,
                                 dtypes=dtypes, rule=rule, quick=quick)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run_dir = _checked_run_dir(run_dir, f"{name}-{dev.type}", "bench")
    say(f"suite {name} on {dev}: variants {', '.join(resolved.variants)} -> {run_dir}")
    started = time.monotonic()
    try:
        tables = run_suite(resolved, dev, run_dir)
    except (RunLockedError, OSError) as exc:  # another writer, or a write refused for permission or space
        raise click.ClickException(str(exc)) from None
    elapsed = time.monotonic() - started
    _print_summary(tables)
    provenance = read_provenance(run_dir)
    say("\n" + ", ".join(f"{key} {provenance[key]}" for key in VERSION_KEYS if pd.notna(provenance.get(key))))
    say(f"wrote {', '.join(sorted(tables))} (.parquet, .csv) and provenance.json to {run_dir} "
               f"after {elapsed:.0f} s")
    if "numerics" in tables:
        failures = float32_failures(tables["numerics"])
        if not failures.empty:
            click.echo(f"float32 check FAILED (tolerance {FLOAT32_TOLERANCE:g}) for: "
                       f"{', '.join(sorted(set(failures['variant'])))}", err=True)
            click.get_current_context().exit(1)
        click.echo(f"float32 check passed: every variant within {FLOAT32_TOLERANCE:g} of the float64 reference")



@bench_command.command("world")
@click.option("--world", "worlds", callback=_comma_list(int), required=True,
              help="Comma list of process counts (world sizes) to measure, e.g. 1,2.")
@click.option("--device", type=click.Choice(training_devices()), default=AUTO, show_default=True,
              help="cpu: gloo, one thread per rank; cuda: nccl, one GPU per rank.")
@click.option("--mode", "modes", callback=_comma_list(), help="Comma list of update, full (default both).")
@click.option("--batch", callback=_comma_list(int), help="Comma list of global batch sizes B (default 256).")
@click.option("--classes", callback=_comma_list(int), help="Comma list of class counts C (default 100000,1000000).")
@click.option("--dim", callback=_comma_list(int), help="Comma list of feature dims D (default 128).")
@click.option("--dtype", type=click.Choice(tuple(DTYPES)), default="float32", show_default=True)
@click.option("--quick", is_flag=True, help="3 steps per measurement instead of 20: a smoke run, not a result.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="RUN_DIR for the table (default runs/bench/world-<device>-<time>).")
def world_command(worlds, device, modes, batch, classes, dim, dtype, quick, run_dir):
    """Time the distributed forms of the centers (replicated, sharded, and a dense all-reduce for the update) per
    step at each world size: the slowest rank's time, bytes received per rank, centers and peak memory per rank.

    Writes RUN_DIR/distributed as .parquet and .csv, and provenance.json.
    """
    from ablate.bench.distributed import run_world_bench  # spawns ranks: only when asked for

    dev = _device(device)
    sizes = {"modes": modes, "batch": batch, "classes": classes, "dim": dim}
    options = {key: value for key, value in sizes.items() if value is not None}
    run_dir = _checked_run_dir(run_dir, f"world-{dev.type}", "distributed")
    say(f"distributed center loss on {dev}, world {', '.join(map(str, worlds))} -> {run_dir}")
    try:
        table = run_world_bench(worlds, run_dir, dtype=dtype, steps=3 if quick else 20, device=dev, **options)
    except (ValueError, RanksFailed, RunLockedError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    shown = table.set_index(["world", "form", "mode", "classes"])[["time_ms_p50", "bytes_per_step",
                                                                   "centers_bytes_per_rank", "peak_mem_bytes"]]
    click.echo(shown.to_string(float_format=lambda v: f"{v:.4g}"))
    say(f"wrote distributed (.parquet, .csv) and provenance.json to {run_dir}")
