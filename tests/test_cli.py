"""The top-level command line."""

import subprocess
import sys

from click.testing import CliRunner

from ablate.cli import main


def test_variants_command_lists_registry_with_costs():
    result = CliRunner().invoke(main, ["variants"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert set(lines) == {"naive", "gather", "fused", "compiled"}
    assert "available" in lines["gather"] and "O(B*C*D)" in lines["naive"]


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "ablate", "--help"], capture_output=True, text=True, check=True)
    assert "Benchmarks and ablations of Center Loss" in out.stdout
