"""`ablate bench world --world N`: bytes per step from the collectives' sizes, memory per rank, the report section."""

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.bench.distributed import dense_update
from ablate.cli import main
from ablate.loss.reference import reference_update
from ablate.report.build import build_report

B, C, D = 64, 1001, 16  # C odd: the shards are uneven (501 and 500 rows)
E, LABEL = 4, 8  # bytes of a float32 and of an int64 label


def run_world(out, worlds: str):
    result = CliRunner().invoke(main, ["bench", "world", "--world", worlds, "--batch", str(B), "--classes", str(C),
                                       "--dim", str(D), "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "distributed.csv")


@pytest.fixture(scope="module")
def world2(tmp_path_factory):
    out = tmp_path_factory.mktemp("world2")
    return out, run_world(out, "2")


def expected_bytes(form: str, mode: str, world: int = 2) -> int:
    """Received per rank, written out from the collectives each form runs (ablate.distributed.centers)."""
    rows = B // world  # every rank's slice, so no padding
    ring = world - 1  # all_gather / reduce-scatter: (W - 1) x the per-rank size
    gather_batch = ring * (LABEL + rows * LABEL + rows * D * E)  # counts, labels, features
    all_reduce = lambda nbytes: 2 * (world - 1) * nbytes // world  # noqa: E731
    return {
        ("replicated", "update"): gather_batch,
        ("sharded", "update"): gather_batch + all_reduce(E),  # + the all-ranks-finite flag
        ("dense", "update"): all_reduce(C * (D + 1) * E),  # (C, D) sums and (C,) counts
        ("replicated", "full"): 2 * all_reduce(2 * E),  # (sum, b_r) forward, its gradient backward
        ("sharded", "full"): gather_batch + ring * rows * D * E + 2 * all_reduce(E),  # + the gradient's reduce-scatter
    }[form, mode]


def test_bytes_per_step_follow_the_collectives_of_each_form(world2):
    _, table = world2
    assert len(table) == 5 and table["note"].isna().all()  # an empty note reads back from CSV as NaN
    for row in table.itertuples():
        assert row.bytes_per_step == expected_bytes(row.form, row.mode), (row.form, row.mode)
        assert row.time_ms_p50 > 0


def test_a_shard_holds_its_rows_and_less_memory_than_the_whole_table(world2):
    _, table = world2
    held = table.set_index(["form", "mode"])["centers_bytes_per_rank"]
    assert (held.loc["sharded"] == -(-C // 2) * D * E).all() and (held.loc["replicated"] == C * D * E).all()
    # The peak is measured (Linux VmHWM), but at these sizes freed memory is reused: only >= 0 holds for sure.
    assert (table["peak_mem_bytes"] >= 0).all()


def test_the_report_has_a_distributed_section(world2, tmp_path):
    out, _ = world2
    page = build_report([out], tmp_path / "report.html", progress=False).read_text()
    for title in ("distributed bench run", "Time and bytes per step", "Memory per rank", "All distributed rows"):
        assert title in page
    assert "left out: the run measured one world size (2)" in page


@pytest.mark.slow
def test_the_report_draws_time_and_bytes_against_world_size(tmp_path):
    run_world(tmp_path / "run", "1,2")
    page = build_report([tmp_path / "run"], tmp_path / "report.html", progress=False).read_text()
    assert "Time per step against world size" in page and "Bytes communicated per step against world size" in page


def test_the_dense_update_it_times_is_eq_4(tmp_path):
    """The dense form is timed against the gather forms, so it must take the same step (a group of one rank)."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        gen = torch.Generator().manual_seed(0)
        centers = torch.randn(9, 5, generator=gen, dtype=torch.float64)
        features = torch.randn(40, 5, generator=gen, dtype=torch.float64)
        labels = torch.randint(0, 6, (40,), generator=gen)  # classes 6 to 8 absent: they must not move
        expected = reference_update(centers, features, labels, alpha=0.5, rule="paper")
        dense_update(centers, features, labels, alpha=0.5)
        torch.testing.assert_close(centers, expected, rtol=1e-12, atol=1e-12)  # float64, a few roundings per entry
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("args, message", [(["--world", "0"], "--world must be an integer >= 1, got 0"),
                                           (["--world", "2", "--mode", "forward"], "unknown mode(s) forward"),
                                           (["--world", "two"], "comma-separated list of ints")])
def test_bad_world_options_are_refused_before_anything_runs(tmp_path, args, message):
    result = CliRunner().invoke(main, ["bench", "world", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
