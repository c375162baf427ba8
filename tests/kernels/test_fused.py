"""The fused Triton variant against the float64 reference (ablate.loss.reference), through the public API.

On the CPU the kernels run under TRITON_INTERPRET=1 (set by conftest.py); on a GPU machine,
`TRITON_INTERPRET=0 python -m pytest tests/kernels/test_fused.py` runs the compiled kernels on CUDA instead.

Errors are normwise, max|got - ref| / max|ref|, with u the unit roundoff of a dtype. Tolerances:
- Loss: every dtype is summed in float32 (float64 for float64): a few roundings per element (the
  difference, the square), at most two steps along D, a tree over a 4096-element tile (12 levels), then
  a pairwise sum of the per-program partials: about 20 roundings, 20 * 6e-8 ~ 1.2e-6 in float32, so
  1e-5; 20 * 1.1e-16 in float64, so 1e-12 with room for the reference's own rounding.
- Gradients and updated centers: the same float32 arithmetic, plus the centers' gradient and the
  update sum at most 10 duplicates (10 * 6e-8), well inside 1e-5; then conversions to the input
  dtype. To float16 each rounds to nearest, at most u = 2^-11 of a value. To bfloat16 CUDA rounds to
  nearest (u = 2^-8) but Triton's interpreter truncates (up to one ulp, 2u = 2^-7); the bounds take
  the interpreter's. An updated center is converted once: 2^-11 (float16), 2^-7 (bfloat16), each
  + 1e-5. A gradient is converted twice, as `gather`'s is: x - c is kept in the input dtype for
  backward, then the gradient is rounded: 2^-10 (float16), 2^-6 (bfloat16), each + 1e-5.
"""

import os
import subprocess
import sys

import pytest
import torch

from tests.support import ROOT, SUPPORT, require

require("triton", "the fused variant needs Triton: the package's `triton` extra")

from ablate.kernels.fused import FUSED_RULES, fused_bytes, fused_update_centers  # noqa: E402
from ablate.loss import CONVENTIONS, available_variants, center_loss, update_centers  # noqa: E402
from ablate.loss.reference import reference_grads, reference_loss, reference_update  # noqa: E402
from ablate.traffic import LABEL_BYTES  # noqa: E402
from tests.support import compile_fused_kernels  # noqa: E402
from tests.support.numerics import absent_classes, normwise_error  # noqa: E402

REPO = str(ROOT)
DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif("fused" not in available_variants("cpu"),
                                                 reason="fused runs on the CPU only under TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
LOSS_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-5, torch.float16: 1e-5}
GRAD_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2**-6 + 1e-5, torch.float16: 2**-10 + 1e-5}
UPDATE_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2**-7 + 1e-5, torch.float16: 2**-11 + 1e-5}

# (B, C, D, labels, layout): odd D, duplicates, absent classes, B=1, D=1; "multi-block" spans three
# programs of 8 rows and two 512-column steps along D (D=600), so duplicates meet across programs.
CASES = {
    "odd-dim-duplicates-absent": (7, 5, 131, [0, 3, 3, 1, 3, 0, 1], "strided features"),  # classes 2, 4 absent
    "batch-of-one": (1, 3, 4, [2], "contiguous"),
    "dim-one": (5, 4, 1, [3, 3, 0, 3, 1], "contiguous"),
    "multi-block": (20, 6, 600, [i * 7 % 4 for i in range(20)], "strided centers and int32 labels"),  # 4, 5 absent
}


def make_case(name, dtype, device, seed=0):
    """features (B, D), labels (B,), centers (C, D) on `device`, laid out as the case says."""
    batch, classes, dim, labels, layout = CASES[name]
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    centers = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    labels = torch.tensor(labels)
    if layout == "strided features":  # every other column of a wider tensor: stride (2D, 2)
        features = torch.stack([features, features], dim=2).reshape(batch, 2 * dim)[:, ::2]
    if layout == "strided centers and int32 labels":  # centers stride (1, C); labels stride 2
        centers = centers.t().contiguous().t()
        labels = torch.stack([labels, labels], dim=1).reshape(-1)[::2].to(torch.int32)
    return features.to(device, dtype), labels.to(device), centers.to(device, dtype)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("convention", CONVENTIONS.names())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_loss_and_both_gradients_match_reference(device, dtype, convention, case):
    features, labels, centers = make_case(case, dtype, device)
    x = features.clone().requires_grad_()
    c = centers.clone().requires_grad_()
    loss = center_loss(x, labels, c, variant="fused", convention=convention)
    grad_output = -1.75  # neither 1 nor positive: the gradients must scale by it, sign included
    loss.backward(torch.tensor(grad_output, dtype=loss.dtype, device=device))

    ref_x, ref_c = features.cpu(), centers.cpu()
    ref_gx, ref_gc = reference_grads(ref_x, labels.cpu(), ref_c, convention)
    assert loss.dim() == 0 and loss.dtype == torch.promote_types(dtype, torch.float32)
    assert normwise_error(loss, reference_loss(ref_x, labels.cpu(), ref_c, convention)) <= LOSS_TOL[dtype]
    assert x.grad.dtype == dtype and c.grad.dtype == dtype
    assert normwise_error(x.grad, grad_output * ref_gx) <= GRAD_TOL[dtype]
    assert normwise_error(c.grad, grad_output * ref_gc) <= GRAD_TOL[dtype]
    assert torch.all(c.grad[absent_classes(labels, centers.shape[0])] == 0)


@pytest.mark.parametrize("device", DEVICES)
def test_only_the_requested_gradient_is_computed(device):
    """Features only (as in the benchmarks and under the paper's rule), centers only, then neither."""
    features, labels, centers = make_case("multi-block", torch.float32, device)
    ref_gx, ref_gc = reference_grads(features.cpu(), labels.cpu(), centers.cpu())

    x = features.clone().requires_grad_()
    center_loss(x, labels, centers, variant="fused").backward()
    assert normwise_error(x.grad, ref_gx) <= GRAD_TOL[torch.float32]

    c = centers.clone().requires_grad_()
    center_loss(features, labels, c, variant="fused").backward()
    assert normwise_error(c.grad, ref_gc) <= GRAD_TOL[torch.float32]
    assert features.grad is None

    with torch.no_grad():  # no gradient wanted: nothing kept for backward, the same loss
        loss = center_loss(x, labels, c, variant="fused")
    assert not loss.requires_grad
    assert normwise_error(loss, reference_loss(features.cpu(), labels.cpu(), centers.cpu())) <= LOSS_TOL[torch.float32]


@pytest.mark.parametrize("convention", CONVENTIONS.names())
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device, convention):
    features, labels, centers = make_case("odd-dim-duplicates-absent", torch.float64, device)
    x = features[:, :5].contiguous().requires_grad_()
    c = centers[:, :5].contiguous().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: center_loss(a, labels, b, variant="fused", convention=convention), (x, c)
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rule", FUSED_RULES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_update_matches_reference(device, dtype, rule, case):
    features, labels, centers = make_case(case, dtype, device)
    before = centers.clone()
    expected = reference_update(centers.cpu(), features.cpu(), labels.cpu(), alpha=0.3, rule=rule)
    update_centers(centers, features, labels, alpha=0.3, rule=rule, variant="fused")
    assert normwise_error(centers, expected) <= UPDATE_TOL[dtype]
    absent = absent_classes(labels, centers.shape[0])
    assert torch.equal(centers[absent], before[absent])  # untouched rows are bit-identical


@pytest.mark.parametrize("rule", FUSED_RULES)
@pytest.mark.parametrize("device", DEVICES)
def test_update_agrees_with_torch_in_any_order(device, rule):
    """Heavy duplicates summed by atomics: any batch order, and the torch rule, agree within fp32 rounding.

    Per element of class j, each result sums n_j deltas d_i = c_j - x_i (rounded identically by both)
    in its own order, within (n_j - 1) u step_j sum|d_i| of the exact sum, then multiplies by step_j
    and subtracts from c_j, two more roundings of at most u (|c_j| + step_j sum|d_i|). So two results
    differ by at most 2u ((n_j + 1) step_j sum|d_i| + |c_j|), computed below in float64.
    """
    g = torch.Generator().manual_seed(3)
    batch, classes, dim, alpha = 40, 3, 37, 0.2
    labels = torch.randint(0, classes, (batch,), generator=g)
    features = torch.randn(batch, dim, generator=g)
    centers = torch.randn(classes, dim, generator=g)
    counts = torch.bincount(labels, minlength=classes).double().unsqueeze(1)  # (C, 1)
    step = alpha / (1 + counts) if rule == "paper" else torch.full_like(counts, alpha)
    abs_delta_sum = torch.zeros(classes, dim, dtype=torch.float64).index_add_(
        0, labels, (centers[labels] - features).double().abs())  # (C, D)
    bound = 2 * 2**-24 * ((counts + 1) * step * abs_delta_sum + centers.double().abs())

    results = []
    for order in (torch.arange(batch), torch.randperm(batch, generator=g), torch.randperm(batch, generator=g)):
        c = centers.clone().to(device)
        update_centers(c, features[order].to(device), labels[order].to(device), alpha=alpha, rule=rule,
                       variant="fused")
        results.append(c.cpu().double())
    torch_rule = centers.clone()
    update_centers(torch_rule, features, labels, alpha=alpha, rule=rule, variant="gather")
    for got in results[1:] + [torch_rule.double()]:
        assert torch.all((got - results[0]).abs() <= bound)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy, inside the interpreter
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("why", ["float16 overflow", "infinite center"])
def test_update_refuses_non_finite_result_and_leaves_centers(device, why):
    if why == "float16 overflow":  # ema with 3 duplicates: 6e4 - (1.2e5 + 1.2e5 + 1.2e5) overflows float16
        centers = torch.tensor([[6e4, 1.0], [2.0, 3.0]], dtype=torch.float16)
        features = torch.tensor([[-6e4, 0.0]] * 3 + [[1.0, 1.0]], dtype=torch.float16)
        labels, rule = torch.tensor([0, 0, 0, 1]), "ema"
    else:  # inf - step * inf is NaN
        centers = torch.tensor([[float("inf"), 1.0], [2.0, 3.0]])
        features = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        labels, rule = torch.tensor([0, 1]), "paper"
    centers, features, labels = centers.to(device), features.to(device), labels.to(device)
    before = centers.clone()
    with pytest.raises(ValueError, match="non-finite center values.*left untouched"):
        update_centers(centers, features, labels, alpha=1.0, rule=rule, variant="fused")
    assert torch.equal(centers, before)  # row 1 would have been finite: still not written


def test_fused_update_names_its_rules():
    features, labels, centers = make_case("dim-one", torch.float32, "cpu")
    with pytest.raises(ValueError, match="implements rules paper, ema; got 'sgd'"):
        fused_update_centers(centers, features, labels, alpha=0.5, rule="sgd")


@pytest.mark.parametrize("device", DEVICES)
def test_update_between_forward_and_backward(device):
    """fused keeps x - c, so its gradient is that of the forward's centers, as gather's is. A graph
    that saved the centers themselves (naive's matmul) must refuse to run backward once the kernels
    have moved them, as it does after the torch update."""
    features, labels, centers = make_case("dim-one", torch.float32, device)
    ref_gx, _ = reference_grads(features.cpu(), labels.cpu(), centers.cpu())
    x = features.clone().requires_grad_()
    fused_loss = center_loss(x, labels, centers, variant="fused")
    naive_loss = center_loss(x, labels, centers, variant="naive")
    update_centers(centers, features, labels, alpha=0.5, rule="paper", variant="fused")
    fused_loss.backward()
    assert normwise_error(x.grad, ref_gx) <= GRAD_TOL[torch.float32]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        naive_loss.backward()


def test_nothing_but_the_kernels_imports_triton():
    """Every other module imports without Triton (the kernels and the loss layer's entry to them aside), and
    without TRITON_INTERPRET the CPU does not offer fused."""
    code = """
import importlib, pkgutil, sys
import ablate
skip = {"ablate.__main__", "ablate.kernels.fused", "ablate.kernels.loss_kernels", "ablate.kernels.update_kernels",
        "ablate.loss.fused"}
names = [m.name for m in pkgutil.walk_packages(ablate.__path__, "ablate.") if m.name not in skip]
for name in names:
    importlib.import_module(name)
assert "triton" not in sys.modules, "imported Triton at import time"
from ablate.loss import available_variants
assert "fused" not in available_variants("cpu")
print(len(names))
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 10  # the walk found the package's modules, not an empty list


def test_kernels_compile_for_cuda():
    """The interpreter is lenient: every kernel must also pass Triton's compiler, here for sm_90 (H200)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = REPO
    out = subprocess.run([sys.executable, str(SUPPORT / "compile_fused_kernels.py")],
                         capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-4000:]
    assert int(out.stdout) == len(compile_fused_kernels.KERNELS) * len(compile_fused_kernels.CONFIGS)


def test_fused_bytes_stay_at_the_floor():
    """Forward + backward reads each feature row, its center row and its label once, writes x - c and
    reads it back, writes dL/dx: 5 * B*D*e + B * 8; the per-program partials and scalars add under 0.1%."""
    batch, dim = 65536, 512
    for dtype in (torch.float32, torch.bfloat16):
        e = torch.empty((), dtype=dtype).element_size()
        floor = 5 * batch * dim * e + batch * LABEL_BYTES
        full = fused_bytes("full", batch, 100_000, dim, dtype)
        parts = fused_bytes("forward", batch, 100_000, dim, dtype) + fused_bytes("backward", batch, 100_000, dim, dtype)
        assert full == parts
        assert floor <= full <= 1.001 * floor
        # the centers' gradient adds a dense (C, D) accumulator and its atomics
        with_centers = fused_bytes("backward", batch, 10, dim, dtype, centers_grad=True)
        assert with_centers > fused_bytes("backward", batch, 10, dim, dtype)


def test_fused_bytes_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode 'sideways'; expected forward, backward, full or update"):
        fused_bytes("sideways", 8, 10, 4, torch.float32)
