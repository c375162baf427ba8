"""Reading the loss layer's registries imports no torch (torch takes seconds to import: `ablate variants`, `ablate
--help` and the report must not pay for it), and the package's exports still reach the functions that need it."""

import subprocess
import sys

from tests.support import ROOT

READ_WITHOUT_TORCH = """
import sys
import ablate.loss.registry
from ablate.loss import (CONVENTIONS, DEFAULT_VARIANT, RULES, available_variants, baseline_variant, convention_scale,
                         get_variant, variant_names)
for name in variant_names():
    variant = get_variant(name)
    assert all((variant.work, variant.memory, variant.runs_on, variant.source)), name
    variant.update_rules
assert baseline_variant() in variant_names() and DEFAULT_VARIANT in variant_names()
assert {"naive", "gather"} <= set(available_variants("cpu"))
assert RULES.names() == ("paper", "sgd", "ema") and convention_scale("half_mean", 4) == 0.125
RULES.get("paper").check_alpha(0.5)
RULES.get("ema").check_stable(0.01, "mean", 64)
assert CONVENTIONS.names() == ("mean", "half_mean", "half_sum")
assert "torch" not in sys.modules, "reading the registries imported torch"
available_variants("cuda")  # another device than the CPU asks torch
assert "torch" in sys.modules
"""

USE_THE_EXPORTS = """
import torch
from ablate.loss import CenterLoss, center_loss, update_centers
x, y, c = torch.ones(3, 2), torch.tensor([0, 1, 1]), torch.zeros(2, 2)
assert center_loss(x, y, c, convention="half_sum").item() == 3.0
update_centers(c, x, y, alpha=0.5, rule="paper")
assert torch.equal(c, torch.tensor([[0.25, 0.25], [1 / 3, 1 / 3]]))
assert CenterLoss(2, 2).centers.shape == (2, 2)
"""


def run(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_registries_are_read_without_importing_torch():
    run(READ_WITHOUT_TORCH)


def test_the_package_exports_the_loss_functions_and_module():
    run(USE_THE_EXPORTS)
