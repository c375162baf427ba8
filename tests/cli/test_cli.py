"""The top-level command line."""

import itertools
import subprocess
import sys

import click
import pytest
import torch
from click.testing import CliRunner

from ablate.cli import LAZY_COMMANDS, MOVED, LazyGroup, main, respell
from ablate.loss import available_variants, get_variant, variant_names
from ablate.registry import lazy


def test_variants_command_lists_registry_with_costs():
    result = CliRunner().invoke(main, ["variants"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert list(lines) == list(variant_names())
    for name in lines:
        assert f"work {get_variant(name).work}" in lines[name] and f"memory {get_variant(name).memory}" in lines[name]
    assert {name for name, line in lines.items() if line.split()[1] == "available"} == set(available_variants("cpu"))


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "ablate", "--help"], capture_output=True, text=True, check=True)
    assert "Benchmarks and ablations of Center Loss" in out.stdout


def test_variants_refuses_an_unknown_device_and_lists_nothing_on_a_missing_gpu():
    bogus = CliRunner().invoke(main, ["variants", "--device", "bogus"])
    assert bogus.exit_code == 2 and "expected a torch device such as cpu, cuda" in bogus.output
    if not torch.cuda.is_available():
        cuda = CliRunner().invoke(main, ["variants", "--device", "cuda"])
        assert cuda.exit_code == 0 and "torch cannot compute on a cuda device here" in cuda.output
        states = [line.split()[1] for line in cuda.output.splitlines() if not line.startswith("torch cannot")]
        assert states and set(states) == {"unavailable"}


# --- what the top level imports -------------------------------------------------------------------------------

SUBCOMMAND_MODULES = ("ablate.train", "ablate.grid", "ablate.bench", "ablate.gate", "ablate.report", "ablate.check",
                      "ablate.compare", "ablate.export")


def imported_modules(*args: str) -> set:
    """The modules `python -m ablate ARGS` imports, from Python's own record of every import (-X importtime)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "ablate", *args], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "ablate.cli" in modules, out.stderr[-2000:]  # the record is there, so an absence below means something
    return modules


def loaded(modules: set, packages) -> list:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_neither_torch_nor_any_subcommand(args):
    modules = imported_modules(*args)
    assert loaded(modules, ("torch", "numpy", "pandas", "sklearn", "mlflow", *SUBCOMMAND_MODULES)) == []


@pytest.mark.parametrize("command", ["grid", "export", "train"])
def test_the_help_of_the_commands_that_track_imports_no_tracker(command):
    """MLflow takes seconds to import: only logging a run loads it (TensorBoard: only a cell that writes to it)."""
    assert loaded(imported_modules(command, "--help"), ("mlflow", "tensorboard")) == []


def test_variants_on_the_cpu_imports_neither_torch_nor_any_subcommand():
    assert loaded(imported_modules("variants"), ("torch", *SUBCOMMAND_MODULES)) == []


def test_the_declared_short_help_is_each_commands_own():
    for name, declared in LAZY_COMMANDS.items():
        command = lazy(declared.target).resolve()
        assert command.name == name
        assert command.get_short_help_str(limit=len(declared.short_help)) == declared.short_help, name


def _top_level_help() -> str:
    with click.Context(main, info_name="ablate") as ctx:
        return main.get_help(ctx)


def test_the_listing_is_clicks_with_every_command_imported(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # Click's widest help, which the declared short helps are cut for
    lazy_listing = _top_level_help()
    monkeypatch.setattr(LazyGroup, "format_commands", click.Group.format_commands)
    assert lazy_listing == _top_level_help()
    assert all(f"\n  {name} " in lazy_listing for name in main.list_commands(None))


@pytest.mark.parametrize("name", ["bench", "check", "compare", "export", "gate", "grid", "report", "train", "variants"])
def test_each_command_shows_its_own_help(name):
    assert name in main.list_commands(None)
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {name} ") and "Options:" in result.output


# --- old spellings (MOVED) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, new", [
    (["bench", "--world", "2"], "ablate bench world --world N"),
    (["bench", "run", "--quick", "--world=1,2"], "ablate bench world --world N"),
    (["bench", "--gate"], "ablate gate run [--against REV]"),
    (["bench", "run", "--write-baseline"], "ablate gate baseline"),
])
def test_an_old_spelling_whose_meaning_moved_is_refused_naming_the_new_command(args, new, tmp_path):
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and error[0].endswith(f"is now `{new}`"), result.output
    assert not (tmp_path / "run").exists()  # refused before anything ran


@pytest.mark.parametrize("args, new", [
    (["bench", "gate", "--against", "HEAD"], ["gate", "run", "--against", "HEAD"]),
    (["bench", "counts", "--write"], ["gate", "counts", "--write"]),
    (["bench", "baseline"], ["gate", "baseline"]),
    (["bench", "--suite", "quick"], ["bench", "run", "--suite", "quick"]),
    (["bench", "run", "--suite", "quick"], ["bench", "run", "--suite", "quick"]),
    (["bench", "--help"], ["bench", "--help"]),
    (["gate", "counts"], ["gate", "counts"]),
])
def test_an_old_spelling_that_still_works_becomes_the_new_one_and_says_so(args, new):
    notes = []
    assert respell(args, note=notes.append) == new
    assert len(notes) == (args != new)
    if notes:
        assert notes[0].startswith("note: `ablate bench") and f"is now `ablate {new[0]} {new[1]}" in notes[0]


def test_a_forwarded_spelling_runs_the_new_command():
    result = CliRunner().invoke(main, ["bench", "gate", "--help"])
    assert result.exit_code == 0 and "Usage: main gate run [OPTIONS]" in result.output, result.output
    assert "note: `ablate bench gate` is now `ablate gate run`" in result.output


def test_every_new_spelling_is_a_command():
    for moved in MOVED.values():
        words = list(itertools.takewhile(str.isalpha, moved.to.split()))  # the command's words, then options
        result = CliRunner().invoke(main, [*words, "--help"])
        assert result.exit_code == 0 and f"Usage: main {' '.join(words)} " in result.output, (moved, result.output)
