"""`ablate check`: the verdict on implementations from outside, right ones and deliberately wrong ones."""

import json

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.loss import available_variants
from tests.support import SUPPORT

TARGETS = SUPPORT / "check_targets.py"


def check(target, *options):
    """(exit code, output, the JSON verdicts as {(section, check): finding}) of `ablate check` without timing."""
    result = CliRunner().invoke(main, ["check", target, "--no-timing", *options])
    return result.exit_code, result.output


def findings(tmp_path, target, *options):
    path = tmp_path / "verdicts.json"
    code, output = check(target, "--json", str(path), *options)
    assert code in (0, 1), output
    verdicts = json.loads(path.read_text())
    return code, output, {(f["section"], f["check"]): f for f in verdicts["findings"]}, verdicts


def test_the_popular_module_computes_sum_over_b_with_the_clamp_offset(tmp_path):
    code, output, by_check, verdicts = findings(tmp_path, f"{TARGETS}:PopularCenterLoss", "--init", "use_gpu=False")
    assert code == 0 and verdicts["agrees"] and verdicts["convention"] == "sum/B", output
    offset = by_check[("convention", "constant offset")]
    assert "clamp artifact" in offset["detail"] and float(offset["verdict"].split()[0]) == pytest.approx(4e-12)
    assert by_check[("gradient", "dL/dc")]["verdict"] == "ok"  # its centers are a Parameter
    assert "agrees with the reference under sum/B" in output


@pytest.mark.parametrize("target, section, name, verdict, detail", [
    ("center_gradient_with_the_wrong_sign", "gradient", "dL/dc", "-1 x reference", "wrong sign"),
    ("half_mean_missing_the_half_in_backward", "gradient", "dL/dx", "2 x reference", "the 1/2 of a half convention"),
    ("nan_for_a_batch_of_one", "edge case", "B=1", "non-finite loss", "nan"),
    ("clamp_that_zeroes_small_distances", "edge case", "small distances", "wrong loss", "relative error 1"),
])
def test_each_defect_is_named_and_fails_the_check(tmp_path, target, section, name, verdict, detail):
    code, output, by_check, verdicts = findings(tmp_path, f"{TARGETS}:{target}")
    assert code == 1 and not verdicts["agrees"], output
    finding = by_check[(section, name)]
    assert finding["verdict"] == verdict and detail in finding["detail"] and finding["passed"] is False, finding
    others = [f for f in verdicts["findings"] if f["passed"] is False and f["section"] != "dtype"]
    # nothing else is blamed: any other failure is the same defect seen again (a gradient in the edge cases)
    assert all(f["check"] == name or detail in f["detail"] for f in others), others


def test_the_missing_half_is_told_apart_from_the_convention(tmp_path):
    _, _, _, verdicts = findings(tmp_path, f"{TARGETS}:half_mean_missing_the_half_in_backward")
    assert verdicts["convention"] == "sum/2B"  # the loss itself is the Caffe layer's


def test_a_float16_overflow_is_named_though_float64_agrees(tmp_path):
    code, output, by_check, _ = findings(tmp_path, f"{TARGETS}:expanded_form_in_half_precision")
    assert code == 0, output
    large = by_check[("dtype", "float16 at feature norm 300")]
    assert large["verdict"] == "non-finite loss" and "overflow" in large["detail"] and large["passed"] is False
    assert by_check[("dtype", "float16 at feature norm 10")]["passed"] is not None


@pytest.mark.parametrize("variant", available_variants("cpu"))
def test_every_built_in_variant_passes(variant):
    code, output = check(variant)
    assert code == 0, output
    assert "agrees with the reference under sum/B" in output


def test_the_timing_line_times_the_target_against_built_ins(tmp_path):
    path = tmp_path / "verdicts.json"
    result = CliRunner().invoke(main, ["check", f"{TARGETS}:PopularCenterLoss", "--init", "use_gpu=False",
                                       "--variants", "gather", "--json", str(path)])
    assert result.exit_code == 0, result.output
    timing = json.loads(path.read_text())["timing"]
    assert [row["classes"] for row in timing] == [10, 1000, 10000]
    assert all(row["target"] > 0 and row["gather"] > 0 for row in timing)
    assert "median ms, forward + backward" in result.output


@pytest.mark.parametrize("target, message", [
    ("no_such_variant", "expected pkg.mod:attr, path/to/file.py:attr or a variant"),
    (f"{TARGETS}:missing", "has no attribute 'missing'"),
    ("nowhere/file.py:f", "no such file"),
    (f"{TARGETS}:PopularCenterLoss", "--init KEY=VALUE, e.g. --init use_gpu=False"),  # no GPU here
])
def test_a_bad_target_is_a_usage_error_that_says_what_was_expected(target, message):
    result = CliRunner().invoke(main, ["check", target, "--no-timing"])
    assert result.exit_code == 2 and message in result.output, result.output
