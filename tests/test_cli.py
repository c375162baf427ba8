"""The top-level command line."""

import subprocess
import sys

import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.loss import available_variants, get_variant, variant_names


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
