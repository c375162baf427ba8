"""One report section per run: the blocks of a grid run or of a bench run, in reading order."""

from ablate.report.bench_figures import roof_blocks, speedup_blocks, time_blocks
from ablate.report.bench_tables import numerics_blocks, raw_blocks, skipped_blocks, train_step_blocks
from ablate.report.blocks import Note, Section, Text
from ablate.report.distributed_blocks import memory_blocks, raw_distributed_blocks, time_bytes_blocks, world_blocks
from ablate.report.findings import findings_blocks, open_set_blocks
from ablate.report.grid_figures import curve_blocks, feature_scatter_blocks, heatmap_blocks, lambda_line_blocks
from ablate.report.grid_tables import status_blocks, summary_blocks, variant_agreement_blocks
from ablate.report.objective_findings import objective_blocks
from ablate.report.tune_blocks import selected_blocks, trace_blocks
from ablate.runs.loading import DistributedRun, GridRun, TuneRun


def reading_notes(run) -> list:
    """What was left out while reading the run folder, and why (one note each)."""
    return [Note(text) for text in run.notes]


def spec_blocks(run: GridRun) -> list:
    return [Text("grid.toml", run.grid_spec)] if run.grid_spec else []


GRID_STEPS = (reading_notes, objective_blocks, findings_blocks, status_blocks, summary_blocks, open_set_blocks,
              heatmap_blocks, lambda_line_blocks, feature_scatter_blocks, curve_blocks, variant_agreement_blocks,
              spec_blocks)
BENCH_STEPS = (reading_notes, time_blocks, speedup_blocks, roof_blocks, numerics_blocks, train_step_blocks,
               skipped_blocks, raw_blocks)
DISTRIBUTED_STEPS = (world_blocks, time_bytes_blocks, memory_blocks, raw_distributed_blocks)
# A tune: its search, then its final seeds as a grid (once there are any).
TUNE_STEPS = (reading_notes, selected_blocks, trace_blocks)


def section_steps(run) -> tuple:
    """The block builders for `run`, each run -> list of blocks."""
    if isinstance(run, DistributedRun):
        return DISTRIBUTED_STEPS
    if isinstance(run, TuneRun):
        return TUNE_STEPS + (GRID_STEPS[1:] if len(run.results) else ())
    return GRID_STEPS if isinstance(run, GridRun) else BENCH_STEPS


def empty_section(run, anchor: str) -> Section:
    kind = "grid" if isinstance(run, GridRun) else "bench"
    what = "distributed bench" if isinstance(run, DistributedRun) else "tune" if isinstance(run, TuneRun) else kind
    return Section(title=f"{what} run {run.path.name}", anchor=anchor, kind=kind, provenance=run.provenance)
