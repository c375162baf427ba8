"""Every option's accepted range is the range that runs, and the help says it (issue: hostile inputs, round three,
item 5): seeds, margins at their exact bounds, scales and pair weights, the ABLATE_* variables, and data_dir (one
spelling per folder, refused where its dataset reads none, no NUL), each through `ablate train` and `ablate grid`
(and every command for a variable), in process."""

import math
import re
import unicodedata

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.grid.spec import expand, load_spec
from ablate.limits import ENVIRONMENT, SEED_MAX
from ablate.runs.schema import cell_id
from ablate.train import CellConfig
from tests.support import assert_bounded_output, write_toml


def run(args, env=None):
    result = CliRunner().invoke(main, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output[-3000:]
    if "--help" not in args:  # a help is as long as its options
        assert_bounded_output(result.output)
    return result


def refused_before_training(option: str, value: str, says: str, extra=()):
    """`ablate train --OPTION VALUE` and `ablate grid --set OPTION=VALUE`: both refuse it before anything runs,
    naming the option; returns the train message."""
    train = run(["train", *extra, f"--{option.replace('_', '-')}", value, "--epochs", "1", "--no-progress"])
    assert train.exit_code == 2 and f"--{option.replace('_', '-')}" in train.output and says in train.output, \
        train.output
    grid_extra = [f"--set={e.lstrip('-').replace('-', '_')}={v}" for e, v in zip(extra[::2], extra[1::2])]
    grid = run(["grid", "--set", f"{option}={value}", *grid_extra, "--set", "epochs=1", "--out", "/nonexistent/x"])
    assert grid.exit_code == 1 and option in grid.output and says in grid.output, grid.output
    return train.output


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**40, -2**31, 2**63 - 1])
def test_a_seed_beyond_what_the_splitter_takes_is_refused_naming_seed(seed):
    refused_before_training("seed", str(seed), f"seed must lie in [0, {SEED_MAX}]")


@pytest.mark.parametrize("seed", [0, SEED_MAX])
def test_the_seeds_at_the_ends_of_the_range_are_taken(seed):
    assert CellConfig(seed=seed).seed == seed


def _interval(message: str):
    """(low, high, low_open, high_open, value) as a range message states them: "... lie in [0, 1.5708) rad, got 2"."""
    match = re.search(r"lie in ([\[(])([^,]+), ([^\])]+)([\])])[^,]*, got (\S+)", message)
    assert match, message
    opening, low, high, closing, value = match.groups()
    return float(low), float(high), opening == "(", closing == ")", float(value.rstrip(".,"))


# (head or pair loss options, option, value): each outside its range by a little, or at an open bound.
MARGIN_MEMBERS = [
    (["--head", "arcface"], "margin", math.pi / 2), (["--head", "arcface"], "margin", 1.5708),
    (["--head", "arcface"], "margin", math.nextafter(math.pi / 2, 4)), (["--head", "arcface"], "margin", -1e-9),
    (["--head", "cosface"], "margin", 1.0000001), (["--head", "cosface"], "margin", -0.0001),
    (["--head", "sphereface"], "margin", 4.0000001), (["--head", "sphereface"], "margin", 0.999),
    (["--pair-loss", "triplet", "--batch-size", "64"], "pair_margin", 0.0),
    (["--pair-loss", "triplet", "--batch-size", "64"], "pair_margin", 2.0000001),
    (["--pair-loss", "contrastive", "--batch-size", "64"], "pair_margin", -1.0000001),
    (["--head", "cosface"], "scale", 0.0), (["--head", "normface"], "scale", 3.5e38),
]


@pytest.mark.parametrize("extra, option, value", MARGIN_MEMBERS)
def test_a_parameter_at_or_beyond_its_bound_is_refused_by_a_message_that_holds_it_outside(extra, option, value):
    message = refused_before_training(option, repr(value), "must", extra=extra)
    if "lie in" in message:
        low, high, low_open, high_open, got = _interval(message.replace("\n", " "))
        inside = (low < got if low_open else low <= got) and (got < high if high_open else got <= high)
        assert not inside, message  # the range the message states excludes the value it shows


@pytest.mark.parametrize("extra, option, value", [
    (["--head", "arcface"], "margin", math.nextafter(math.pi / 2, 0)), (["--head", "cosface"], "margin", 1.0),
    (["--head", "sphereface"], "margin", 1.0), (["--pair-loss", "triplet", "--batch-size", "64"], "pair_margin", 2.0),
    (["--head", "cosface"], "scale", 3.4e38), (["--pair-loss", "triplet", "--batch-size", "64"], "pair_weight", 3.4e38),
])
def test_a_parameter_just_inside_its_bound_is_taken(extra, option, value):
    options = dict(zip([e.lstrip("-").replace("-", "_") for e in extra[::2]], extra[1::2]))
    options = {k: int(v) if v.isdigit() else v for k, v in options.items()}
    assert getattr(CellConfig(**options, **{option: value}), option) == value


@pytest.mark.parametrize("option, value, extra", [
    ("scale", "1e39", ["--head", "cosface"]), ("scale", "1e308", ["--head", "arcface"]),
    ("pair_weight", "1e39", ["--pair-loss", "triplet", "--batch-size", "64"]),
    ("pair_weight", "1e308", ["--pair-loss", "contrastive", "--batch-size", "64"]),
    ("lambda", "1e308", []), ("lr", "1e39", []),
])
def test_scales_and_weights_are_capped_as_lambda_and_lr_are(option, value, extra):
    refused_before_training(option, value, "3.4", extra=extra)


BAD_LIMITS = ["²", "٣", "-1", "0", "abc", "1e99", " 4", "4\n", "99999999999999999999999", "1.5", "+3"]
COMMANDS = [["variants"], ["report", "nowhere"], ["compare", "a", "b"], ["grid", "--list"], ["train", "--epochs", "1"],
            ["bench", "run", "--quick"], ["gate", "counts"]]


@pytest.mark.parametrize("name", ENVIRONMENT)
@pytest.mark.parametrize("value", BAD_LIMITS)
def test_a_bad_limit_in_the_environment_fails_every_command_naming_the_variable(name, value):
    for command in COMMANDS:
        result = run(command, env={name: value})
        assert result.exit_code == 1 and f"${name} must be an integer in [" in result.output, (command, result.output)


def test_the_help_says_each_range():
    train = run(["train", "--help"]).output
    flat = " ".join(train.split())
    assert f"[0, {SEED_MAX}]" in flat and "arcface 0.5 rad in [0, 1.5708) rad" in flat
    assert "in (0, 3.40282e+38]" in flat and "pair loss, > 0 and at most 3.4e+38" in flat
    top = " ".join(run(["--help"]).output.split())
    for limit in ENVIRONMENT.values():
        assert f"${limit.name}:" in top and f"[{limit.low}, {limit.high:,}]" in top


# --- data_dir ------------------------------------------------------------------------------------------------------

def _spellings(tmp_path):
    """One folder (named in NFD, as a file system that keeps bytes may hold it) and five spellings of it: NFD, NFC,
    through a link, with a detour through "..", and relative to the working folder."""
    nfd = unicodedata.normalize("NFD", "café-données")
    folder = tmp_path / nfd
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    nfc = str(tmp_path / unicodedata.normalize("NFC", nfd))
    return folder, [str(folder), nfc, str(tmp_path / "link"), str(tmp_path / "link" / ".." / nfd)]


def test_every_spelling_of_a_data_dir_is_one_cell_in_train_and_in_grid(tmp_path, monkeypatch):
    import ablate.train.cli

    folder, spellings = _spellings(tmp_path)
    trained = []
    monkeypatch.setattr(ablate.train.cli, "run_cell", lambda config, **kwargs: trained.append(config) or {})
    monkeypatch.setattr(ablate.train.cli, "summary_lines", lambda record: [])
    for spelling in spellings:
        result = run(["train", "--dataset", "fashion-mnist", "--data-dir", spelling, "--epochs", "1"])
        assert result.exit_code == 0, result.output
    ids = {cell_id(config.to_dict()) for config in trained}
    assert len(ids) == 1 and {config.data_dir for config in trained} == {str(folder)}
    spec = write_toml(tmp_path, "[axes]\ndataset = \"fashion-mnist\"\nepochs = 1\n"
                      f"data_dir = {[s for s in spellings]!r}\n".replace("'", '"'))
    cells = expand(load_spec(spec))
    assert [cell_id(c) for c in cells] == list(ids)


@pytest.mark.parametrize("dataset", ["digits", "mnist5k", "synthetic"])
def test_a_data_dir_its_dataset_does_not_read_is_refused_in_train_and_in_grid(tmp_path, dataset):
    refused_before_training("data_dir", str(tmp_path), f"data_dir does not apply to dataset {dataset}",
                            extra=["--dataset", dataset])


@pytest.mark.parametrize("option, value, dataset", [
    ("num_classes", "7", "digits"), ("synthetic_dim", "5", "fashion-mnist"), ("test_fraction", "0.3", "fashion-mnist"),
    ("samples_per_class", "9", "mnist5k"),
])
def test_any_option_a_dataset_ignores_is_refused_in_train_and_in_grid(option, value, dataset):
    refused_before_training(option, value, f"{option} does not apply to dataset {dataset}",
                            extra=["--dataset", dataset])


def test_a_nul_in_data_dir_is_refused_from_a_grid_file_and_the_command_line(tmp_path):
    spec = write_toml(tmp_path, '[axes]\ndataset = "fashion-mnist"\ndata_dir = "/data\\u0000/x"\n')
    grid = run(["grid", str(spec), "--out", str(tmp_path / "run")])
    assert grid.exit_code == 1 and "data_dir must be a path, which holds no NUL character" in grid.output
    assert "\\x00" in grid.output and not (tmp_path / "run").exists()
    train = run(["train", "--dataset", "fashion-mnist", "--data-dir", "/data\x00/x"])
    assert train.exit_code == 2 and "--data-dir" in train.output and "holds no NUL" in train.output
