"""`ablate check` cannot be fooled or hung by its target (issue: hostile inputs, round two, item 6)."""

import json

import pytest
from click.testing import CliRunner
from support import ROOT

from ablate.cli import main

HOSTILE = ROOT / "tests" / "hostile_check_targets.py"


def check(*args):
    result = CliRunner().invoke(main, ["check", *args, "--no-timing"])
    return result.exit_code, result.output


@pytest.mark.parametrize("target, reason", [
    (f"{HOSTILE}:exits_in_the_loss", "ended its process (exit status 0)"),
    (f"{ROOT / 'tests' / 'hostile_exit_at_import.py'}:loss", "ended its process (exit status 0) in importing"),
])
def test_a_target_that_exits_fails_the_check_with_the_reason(target, reason):
    code, output = check(target)
    assert code == 1 and reason in output and "agrees" not in output, output


def test_a_target_that_never_returns_is_stopped_and_the_call_named():
    code, output = check(f"{HOSTILE}:never_returns", "--timeout", "2")
    assert code == 1 and "hung in the convention batch B=8, C=5" in output and "2 s" in output, output


def test_a_target_that_mutates_its_inputs_does_not_agree(tmp_path):
    path = tmp_path / "v.json"
    code, output = check(f"{HOSTILE}:zeroes_the_labels", "--json", str(path))
    verdicts = json.loads(path.read_text())
    assert code == 1 and not verdicts["agrees"], output
    assert "changed its input labels in place" in verdicts["findings"][0]["detail"]


def test_the_control_target_agrees():
    code, output = check(f"{HOSTILE}:sums_over_b")
    assert code == 0 and "agrees with the reference under sum/B" in output, output


def test_a_harness_rejection_is_not_credited_as_rejecting_bad_input(tmp_path):
    path = tmp_path / "v.json"
    check(f"{HOSTILE}:returns_a_float", "--json", str(path))
    bad_input = {f["check"]: f for f in json.loads(path.read_text())["findings"] if f["section"] == "bad input"}
    assert bad_input["NaN feature"]["passed"] is False and bad_input["NaN feature"]["verdict"] == "invalid output"


def test_an_impossible_json_path_is_refused_before_any_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = check(f"{HOSTILE}:never_returns", "--json", str(blocker / "v.json"))
    assert code == 2 and "--json" in output and "is a file, not a folder" in output, output


@pytest.mark.parametrize("init, message", [
    (["num_classes=3"], "--init num_classes is set by the checks"),
    (["feat_dim=3"], "--init feat_dim is set by the checks"),
    (["use_gpu=False", "use_gpu=True"], "--init use_gpu is given twice"),
])
def test_init_cannot_set_the_harness_sizes_or_repeat_a_key(init, message):
    options = [o for value in init for o in ("--init", value)]
    code, output = check(f"{ROOT / 'tests' / 'check_targets.py'}:PopularCenterLoss", *options)
    assert code == 2 and message in output, output
