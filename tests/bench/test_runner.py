"""`ablate bench` end to end on the CPU: tables as the contract names them, skips, resume, the float32 check."""

import json
import math
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.analysis.numerics import FLOAT32_TOLERANCE, float32_failures
from ablate.bench import runner
from ablate.bench.numerics import numerics_case
from ablate.bench.runner import BENCH_COLUMNS, bench_table, measure_point, numerics_table, run_suite
from ablate.bench.suites import NumericsSpec, Point, resolve_suite
from ablate.cli import main
from ablate.loss.registry import VARIANTS
from ablate.runs.parts import PartStore

CPU = torch.device("cpu")
NUMERICS_COLUMNS = ["variant", "dtype", "convention", "batch", "classes", "dim", "feature_norm", "loss_rel_error",
                    "grad_features_rel_error", "grad_centers_rel_error"]
TRAIN_STEP_COLUMNS = ["workload", "variant", "batch", "classes", "dim", "device", "samples_per_s", "time_ms_p50"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("quick")
    result = CliRunner().invoke(main, ["bench", "--suite", "quick", "--device", "cpu", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir, result.output


def tiny_suite(**axes):
    suite = resolve_suite("quick", CPU, modes=("forward", "full"), batch=(16,), classes=(5,), dim=(4,), **axes)
    return replace(suite, numerics=None, train_step=None)


def test_tables_have_the_contract_columns_and_one_row_per_variant_and_point(quick_run):
    run_dir, _ = quick_run
    bench = pd.read_parquet(run_dir / "bench.parquet")
    assert list(bench.columns) == list(BENCH_COLUMNS)
    assert len(bench) == len(bench.drop_duplicates(["variant", "mode", "batch", "classes", "dim", "dtype"]))
    assert set(bench["variant"]) == {"naive", "gather"}
    assert set(bench["mode"]) == {"forward", "backward", "full", "update"}
    assert (bench.loc[bench["mode"] == "update", "rule"] == "paper").all()
    assert (bench.loc[bench["mode"] != "update", "rule"] == "").all()
    timed = bench[bench["note"] == ""]
    assert len(timed) == len(bench)
    assert (timed["time_ms_p20"] <= timed["time_ms_p50"]).all() and (timed["time_ms_p50"] <= timed["time_ms_p80"]).all()
    assert timed["samples_per_s"].to_numpy() == pytest.approx(timed["batch"] / (timed["time_ms_p50"] * 1e-3))
    assert timed["gb_per_s"].to_numpy() == pytest.approx(timed["bytes"] / (timed["time_ms_p50"] * 1e-3) / 1e9)
    assert timed[["peak_mem_bytes", "roof_fraction"]].isna().all().all()  # CUDA-only readings
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "bench.csv", keep_default_na=False, na_values=[""]).drop(
        columns=["rule", "note"]), bench.drop(columns=["rule", "note"]), check_dtype=False)

    numerics = pd.read_parquet(run_dir / "numerics.parquet")
    assert list(numerics.columns[: len(NUMERICS_COLUMNS)]) == NUMERICS_COLUMNS
    steps = pd.read_parquet(run_dir / "train_step.parquet")
    assert set(TRAIN_STEP_COLUMNS) <= set(steps.columns)
    large = steps[steps["workload"] == "large_head"]
    assert set(large["variant"]) == {"naive", "gather"} and (large["samples_per_s"] > 0).all()

    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["suite"]["name"] == "quick" and provenance["torch"] == torch.__version__
    assert provenance["started_at"] <= provenance["finished_at"]
    assert not (run_dir / "parts").exists()  # a finished run leaves no partial units behind


def test_summary_and_float32_check_are_printed(quick_run):
    _, output = quick_run
    assert "median time per call (ms)" in output and "float32 check passed" in output


def test_naive_cancellation_shows_in_bfloat16_and_float32_agrees(quick_run):
    run_dir, _ = quick_run
    numerics = pd.read_parquet(run_dir / "numerics.parquet").set_index(["dtype", "feature_norm", "variant"])
    assert float32_failures(numerics.reset_index()).empty
    for norm in (1.0, 100.0):
        naive = numerics.loc[("bfloat16", norm, "naive"), "grad_features_rel_error"]
        gather = numerics.loc[("bfloat16", norm, "gather"), "grad_features_rel_error"]
        # ||x||^2 + ||c||^2 - 2 x.c loses about eps * ||x||^2 against distances of (0.1 ||x||)^2.
        assert naive > 10 * gather


def test_float16_naive_is_recorded_as_refused_not_crashed():
    rows = numerics_case(("naive", "gather"), "float16", "mean", 10.0, NumericsSpec(batch=32, classes=8, dim=8), CPU)
    naive, gather = rows
    assert naive["note"].startswith("TypeError") and math.isnan(naive["loss_rel_error"])
    # gather rounds x - c once in float16 and sums in float32: the 4 * eps bound of tests/test_loss.py.
    assert gather["note"] == "" and gather["loss_rel_error"] < 4 * 2**-11


@pytest.fixture
def broken_variant():
    """A variant whose loss is 0.1% too large: the float32 check must catch it."""
    gather = VARIANTS.get("gather")
    VARIANTS.register(replace(gather, name="broken", loss=lambda x, y, c, conv: gather.loss(x, y, c, conv) * 1.001))
    yield "broken"
    VARIANTS.unregister("broken")


def test_float32_check_catches_a_wrong_variant(broken_variant, tmp_path):
    spec = NumericsSpec(batch=32, classes=8, dim=8)
    rows = numerics_case(("gather", broken_variant), "float32", "mean", 10.0, spec, CPU)
    failures = float32_failures(pd.DataFrame(rows))
    assert list(failures["variant"]) == ["broken"]
    assert failures["loss_rel_error"].iloc[0] > FLOAT32_TOLERANCE

    result = CliRunner().invoke(main, ["bench", "--suite", "quick", "--device", "cpu", "--variants", "gather,broken",
                                       "--mode", "forward", "--batch", "8", "--classes", "4", "--dim", "4",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "float32 check FAILED" in result.output and "broken" in result.output


def test_cells_over_the_memory_budget_are_skipped_with_the_reason():
    point = Point("full", 256, 100_000, 16, "float32")  # inputs of 0.02 GB; naive's (B, C) temporaries 0.5 GB
    budget = runner.input_bytes(256, 100_000, 16, torch.float32) + 1e8
    suite = replace(tiny_suite(), memory_fraction=budget / runner.memory_budget_bytes(CPU, 1.0))
    rows = measure_point(point, ("naive",), CPU, suite, math.nan)
    assert rows[0]["note"].startswith("skipped: needs about") and math.isnan(rows[0]["time_ms_p50"])


def test_a_point_whose_inputs_cannot_fit_is_skipped_before_they_are_allocated(tmp_path, monkeypatch):
    def allocate(*args, **kwargs):
        raise AssertionError("inputs allocated for a point over the memory budget")

    monkeypatch.setattr(runner, "clustered_inputs", allocate)
    suite = tiny_suite(variants=("gather",))
    rows = measure_point(Point("forward", 256, 100_000_000, 4096, "float32"), ("gather",), CPU, suite, math.nan)
    assert rows[0]["note"].startswith("skipped: its inputs need about 4915.2 GB")
    # The quick suite: its numerics and training steps are the shortest, and the point under test is the same.
    result = CliRunner().invoke(main, ["bench", "--suite", "quick", "--device", "cpu", "--variants", "gather",
                                       "--mode", "forward", "--classes", "100000000", "--dim", "4096", "--quick",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bench = pd.read_parquet(tmp_path / "bench.parquet")
    assert bench["note"].str.startswith("skipped: its inputs need").all() and not (tmp_path / "parts").exists()


@pytest.mark.parametrize("content", ["", "[]", "null", "{half", '[{"variant": "gather"}, 3]'])
def test_a_broken_part_file_is_named_and_measured_again(tmp_path, content, capsys):
    store = PartStore(tmp_path, {"suite": "x"}).open()
    part = store.root / "bench" / "unit.json"
    part.parent.mkdir(parents=True)
    part.write_text(content)
    rows = store.rows("bench", "unit", lambda: [{"variant": "measured again"}])
    assert rows == [{"variant": "measured again"}] and json.loads(part.read_text()) == rows
    assert f"{part}: " in capsys.readouterr().out
    (store.root / "manifest.json").write_text(content)
    assert PartStore(tmp_path, {"suite": "x"}).open().discarded == 1  # a broken manifest: parts not trusted


def test_bench_refuses_a_grid_run_folder(tmp_path):
    (tmp_path / "cells").mkdir()
    (tmp_path / "provenance.json").write_text('{"host": "grid machine"}')
    result = CliRunner().invoke(main, ["bench", "--device", "cpu", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "holds a grid run" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells", "provenance.json"]


def test_a_variant_that_refuses_a_dtype_does_not_stop_the_others():
    rows = measure_point(Point("forward", 16, 5, 4, "float16"), ("naive", "gather"), CPU, tiny_suite(), math.nan)
    naive, gather = rows
    assert naive["note"].startswith("TypeError") and math.isnan(naive["time_ms_p50"])
    assert gather["note"] == "" and gather["time_ms_p50"] > 0


def test_points_past_the_time_budget_are_recorded_and_left_for_a_rerun(tmp_path):
    suite = replace(tiny_suite(), time_budget_s=1.0)
    store = PartStore(tmp_path, {})
    table = bench_table(suite, CPU, store, math.nan, started=time.monotonic() - 10, progress=False)
    assert table["note"].str.contains("time budget of 1 s").all() and table["time_ms_p50"].isna().all()
    assert not store.root.exists()


def count_measured_points(monkeypatch, interrupt_after=None) -> list:
    """Make runner.measure_point record each point it measures in the returned list, and raise
    KeyboardInterrupt (as Ctrl-C would) once `interrupt_after` points are measured."""
    measured = []

    def measure(point, *args):
        if interrupt_after is not None and len(measured) == interrupt_after:
            raise KeyboardInterrupt
        measured.append(point)
        return measure_point(point, *args)  # the real one, imported before any test patched the module

    monkeypatch.setattr(runner, "measure_point", measure)
    return measured


def test_an_interrupted_run_resumes_without_measuring_again(tmp_path, monkeypatch):
    suite = tiny_suite(dtypes=("float32", "bfloat16"))
    first = count_measured_points(monkeypatch, interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, CPU, tmp_path, progress=False)
    assert len(list((tmp_path / "parts" / "bench").glob("*.json"))) == 2
    assert not (tmp_path / "bench.parquet").exists()

    then = count_measured_points(monkeypatch)
    tables = run_suite(suite, CPU, tmp_path, progress=False)
    assert len(first) + len(then) == len(suite.points()) and not set(first) & set(then)
    assert len(tables["bench"]) == 2 * len(suite.points()) and (tables["bench"]["note"] == "").all()
    assert not (tmp_path / "parts").exists()


def test_parts_of_a_different_study_are_discarded_not_reused(tmp_path, monkeypatch):
    quick = tiny_suite()
    count_measured_points(monkeypatch, interrupt_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_suite(quick, CPU, tmp_path, progress=False)
    assert len(list((tmp_path / "parts" / "bench").glob("*.json"))) == 1

    then = count_measured_points(monkeypatch)
    longer = replace(quick, timing=replace(quick.timing, rounds=quick.timing.rounds + 1))  # same points, other timing
    run_suite(longer, CPU, tmp_path, progress=False)
    assert len(then) == len(longer.points())  # every point measured again under the new timing


def test_numerics_columns_keep_their_order_when_resumed(tmp_path):
    suite = replace(tiny_suite(), numerics=NumericsSpec(dtypes=("float32",), batch=8, classes=3, dim=4,
                                                        feature_norms=(1.0,)))
    store = PartStore(tmp_path, {}).open()
    fresh = numerics_table(suite, CPU, store, progress=False)  # measured, and stored as JSON (keys sorted)
    resumed = numerics_table(suite, CPU, store, progress=False)  # read back, as a resumed run does
    assert list(resumed.columns) == list(fresh.columns)
    assert list(fresh.columns[: len(NUMERICS_COLUMNS)]) == NUMERICS_COLUMNS


@pytest.mark.parametrize("args, expected", [
    (["--variants", "gather,bogus"], "unknown variant bogus; expected one of"),
    (["--mode", "sideways"], "unknown mode sideways; expected one of forward, backward, full, update"),
    (["--dtype", "int8"], "unknown dtype int8; expected one of float32"),
    (["--batch", "0"], "batch must be a list of integers >= 1"),
    (["--classes", "ten"], "expected a comma-separated list of ints"),
    (["--rule", "newton"], "'newton' is not one of 'paper', 'sgd', 'ema'"),
    (["--suite", "huge"], "'huge' is not one of"),
])
def test_bad_options_are_refused_with_what_was_expected(args, expected, tmp_path):
    result = CliRunner().invoke(main, ["bench", "--device", "cpu", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rows_carry_events_timings_peak_memory_and_roof_fraction(tmp_path):
    suite = replace(resolve_suite("quick", torch.device("cuda"), variants=("naive", "gather"), modes=("full",),
                                  batch=(4096,), classes=(1000,), dim=(128,)), train_step=None)
    tables = run_suite(suite, torch.device("cuda"), tmp_path, progress=False)
    bench = tables["bench"]
    assert (bench["note"] == "").all() and (bench["device"] == "cuda").all()
    assert (bench["peak_mem_bytes"] > 0).all() and (bench["roof_fraction"] > 0).all()
    naive, gather = bench.set_index("variant").loc[["naive", "gather"], "peak_mem_bytes"]
    assert naive > 4096 * 1000 * 4 > gather  # naive holds (B, C) temporaries, gather does not
    assert float32_failures(tables["numerics"]).empty
