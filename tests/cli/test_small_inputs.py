"""The smaller hostile inputs (issue: hostile inputs, round two, item 8): the loss layer's arguments checked at
construction, D = 0 refused, devices torch cannot compute on listed as such, all-failed grids and unwritable
outputs."""

import os

import pytest
import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.io import check_writable
from ablate.loss import CenterLoss, center_loss, update_centers
from ablate.runs import readers, schema
from tests.support.fixture_runs import make_grid_run


@pytest.mark.parametrize("call", [
    lambda: center_loss(torch.zeros(4, 0), torch.zeros(4, dtype=torch.long), torch.zeros(3, 0)),
    lambda: update_centers(torch.zeros(3, 0), torch.zeros(4, 0), torch.zeros(4, dtype=torch.long), alpha=0.5),
])
def test_a_zero_feature_dimension_is_refused(call):
    with pytest.raises(ValueError, match=r"at least one dimension \(D >= 1\)"):
        call()


@pytest.mark.parametrize("args, kwargs, message", [
    ((True, 2), {}, "num_classes must be an integer >= 1, got True"),
    ((4.5, 2), {}, "num_classes must be an integer >= 1, got 4.5"),
    ((4, 2.0), {}, "feat_dim must be an integer >= 1, got 2.0"),
    ((4, 0), {}, "feat_dim must be an integer >= 1, got 0"),
    ((4, 2), {"rule": "bogus"}, "unknown rule 'bogus'; expected one of"),
    ((4, 2), {"convention": "bogus"}, "unknown convention 'bogus'; expected one of"),
    ((4, 2), {"variant": "bogus"}, "bogus"),
])
def test_center_loss_checks_every_argument_at_construction(args, kwargs, message):
    with pytest.raises((ValueError, KeyError)) as error:
        CenterLoss(*args, **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("device", ["meta", "xla"] + ([] if torch.backends.mps.is_available() else ["mps"]))
def test_variants_on_a_device_torch_cannot_compute_on_lists_none_available(device):
    result = CliRunner().invoke(main, ["variants", "--device", device])
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if line and not line.startswith("torch cannot")]
    assert listed and all(" unavailable " in line or " broken " in line for line in listed), result.output
    assert f"torch cannot compute on a {device} device here" in result.output


def test_a_grid_where_every_cell_failed_reads_its_own_curves_back(tmp_path):
    run = make_grid_run(tmp_path / "run", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0,),
                        failed_cells=2)
    curves = readers.read_table(schema.table_path(run, schema.CURVES), required=schema.CURVE_COLUMNS,
                                  numeric=("epoch", "value"))
    assert curves.empty


@pytest.mark.skipif(os.geteuid() != 0, reason="only root passes access() on /proc")
def test_an_output_under_proc_is_refused_before_training_even_as_root():
    with pytest.raises(ValueError, match="cannot write /proc/x: /proc takes no new file"):
        check_writable("/proc/x")


def test_an_out_that_is_a_dangling_link_is_refused_up_front(tmp_path):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    result = CliRunner().invoke(main, ["grid", "--set", "epochs=1", "--out", str(link)])
    assert result.exit_code == 1 and f"{link} is a link to {tmp_path / 'gone'}, which does not exist" in result.output


def test_a_data_dir_that_is_not_utf8_is_refused_before_any_cell():
    result = CliRunner().invoke(main, ["train", "--data-dir", "/tmp/caf\udce9", "--epochs", "1", "--no-progress"])
    assert result.exit_code == 2 and "data_dir must be a path that is valid UTF-8" in result.output, result.output
