"""Every CPU variant, convention and dtype against the one float64 reference (ablate.loss.reference).

Errors are measured normwise: max|got - ref| / max|ref|. Tolerances, per dtype, with eps its unit
roundoff, from the number of roundings between the inputs (the reference reads the same rounded
inputs) and the result:
- float64: sums of at most B*D <= 1,000 terms; <= 1e3 * 1.1e-16 ~ 1e-13, so 1e-10 leaves margin for the
  naive form's cancellation (eps * (||x||^2 + ||c||^2) / ||x - c||^2 stays O(1) on these inputs).
- float32: the same argument with eps = 6e-8 gives 6e-5 worst case; 1e-4.
- bfloat16 / float16 (gather only): x - c is rounded once in the input dtype (relative error eps/2,
  squared: eps), then summed in fp32; the centers' gradient also sums up to B duplicates in the input
  dtype. So 4 * eps: 3.2e-2 for bf16 (eps = 2^-8), 2e-3 for fp16 (eps = 2^-11).
"""

import pytest
import torch

from ablate.loss import CONVENTIONS, available_variants, center_loss, get_variant
from ablate.loss.naive import naive_artifact
from ablate.loss.reference import reference_grads, reference_loss
from ablate.loss.registry import compile_available
from tests.support.numerics import absent_classes, normwise_error

# A variant not timed on the CPU runs there through an interpreter, too slowly for these sizes: its own tests
# (tests/kernels/test_fused.py) cover it with small ones.
CORE_VARIANTS = [v for v in available_variants("cpu") if get_variant(v).timed("cpu")]
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 4 * 2**-8, torch.float16: 4 * 2**-11}

# (B, C, D, labels): odd sizes, duplicates, absent classes, B=1, C=1.
CASES = {
    "odd-duplicates-absent": (7, 5, 131, [0, 3, 3, 1, 3, 0, 1]),  # class 2 and 4 absent
    "batch-of-one": (1, 3, 4, [2]),
    "one-class": (4, 1, 3, [0, 0, 0, 0]),
    "all-same-label": (9, 6, 17, [5] * 9),
}


def make_case(name, dtype, noncontiguous=False, seed=0):
    batch, classes, dim, labels = CASES[name]
    g = torch.Generator().manual_seed(seed)
    if noncontiguous:  # every other column of a wider tensor: stride (2D, 2)
        features = torch.randn(batch, 2 * dim, generator=g, dtype=torch.float64)[:, ::2]
    else:
        features = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    centers = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    return features.to(dtype), torch.tensor(labels), centers.to(dtype)


def variant_dtypes():
    for variant in CORE_VARIANTS:
        for dtype in (torch.float64, torch.float32):
            yield variant, dtype
    yield "gather", torch.bfloat16
    yield "gather", torch.float16


# The compiled variant builds a graph per dtype, grad state and size specialization (B = 1, C = 1): its whole
# matrix runs in the slow lane, its first case under the first convention per dtype in the fast one.
FAST_COMPILED = (CONVENTIONS.names()[0], next(iter(CASES)))


def matrix():
    for variant, dtype in variant_dtypes():
        for convention in CONVENTIONS.names():
            for case in CASES:
                slow = variant == "compiled" and (convention, case) != FAST_COMPILED
                yield pytest.param(variant, dtype, convention, case, marks=[pytest.mark.slow] if slow else [],
                                   id=f"{variant}-{str(dtype).removeprefix('torch.')}-{convention}-{case}")


@pytest.mark.parametrize("variant, dtype, convention, case", matrix())
def test_loss_and_gradients_match_reference(variant, dtype, convention, case):
    features, labels, centers = make_case(case, dtype, noncontiguous=(case == "odd-duplicates-absent"))
    x = features.clone().requires_grad_()
    c = centers.clone().requires_grad_()
    loss = center_loss(x, labels, c, variant=variant, convention=convention)
    loss.backward()

    ref = reference_loss(features, labels, centers, convention)
    if variant == "naive":  # its documented clamp artifact, added on purpose
        ref = ref + naive_artifact(centers.shape[0], features.shape[0], convention)
    ref_gx, ref_gc = reference_grads(features, labels, centers, convention)
    tol = TOL[dtype]
    assert loss.dim() == 0
    assert loss.dtype == torch.promote_types(dtype, torch.float32)
    assert normwise_error(loss, ref) <= tol
    assert x.grad.dtype == dtype and c.grad.dtype == dtype
    assert normwise_error(x.grad, ref_gx) <= tol
    assert normwise_error(c.grad, ref_gc) <= tol
    absent = absent_classes(labels, centers.shape[0])
    assert torch.all(c.grad[absent] == 0)


@pytest.mark.parametrize("variant", ["naive", "gather"])
@pytest.mark.parametrize("convention", CONVENTIONS.names())
def test_gradcheck_float64(variant, convention):
    features, labels, centers = make_case("odd-duplicates-absent", torch.float64)
    x = features[:, :6].contiguous().requires_grad_()
    c = centers[:, :6].contiguous().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: center_loss(a, labels, b, variant=variant, convention=convention), (x, c)
    )


def test_grad_output_scales_gradients():
    features, labels, centers = make_case("odd-duplicates-absent", torch.float64)
    x = features.clone().requires_grad_()
    c = centers.clone().requires_grad_()
    (3.5 * center_loss(x, labels, c)).backward()
    ref_gx, ref_gc = reference_grads(features, labels, centers)
    assert normwise_error(x.grad, 3.5 * ref_gx) <= TOL[torch.float64]
    assert normwise_error(c.grad, 3.5 * ref_gc) <= TOL[torch.float64]


def test_naive_adds_clamp_artifact_exactly():
    """(C-1) * 1e-12 under "mean": visible in float64 when the true loss is small."""
    classes, dim = 1000, 8
    centers = torch.randn(classes, dim, dtype=torch.float64)
    labels = torch.tensor([1, 7, 7])
    features = centers[labels] + 1e-3  # true loss = 8 * 1e-6 per sample
    gap = center_loss(features, labels, centers, variant="naive") - reference_loss(features, labels, centers)
    assert gap.item() == pytest.approx((classes - 1) * 1e-12, rel=1e-3)
    gather_gap = center_loss(features, labels, centers, variant="gather") - reference_loss(features, labels, centers)
    assert abs(gather_gap.item()) < 1e-15


def test_naive_clamp_zeroes_gradient_of_samples_at_their_center():
    centers = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    # Row 0 sits 1e-8 from its center: distance 2e-16 < 1e-12, so naive's clamp kills its gradient.
    features = torch.stack([centers[0] + 1e-8, centers[1] + 0.5]).requires_grad_()
    center_loss(features, labels, centers, variant="naive").backward()
    ref_gx, _ = reference_grads(features.detach(), labels, centers)
    assert torch.all(features.grad[0] == 0) and torch.all(ref_gx[0] != 0)
    assert torch.allclose(features.grad[1], ref_gx[1], rtol=1e-10, atol=0)


def test_naive_refuses_float16_with_a_clear_error():
    features, labels, centers = make_case("odd-duplicates-absent", torch.float16)
    with pytest.raises(TypeError, match="cannot run in float16.*overflows"):
        center_loss(features, labels, centers, variant="naive")


def test_naive_bfloat16_cancellation_is_measured_and_bounded():
    """Realistic features (norm ~ 20) sitting 0.1 from their centers, as center loss makes them.

    naive computes ||x||^2 + ||c||^2 - 2 x.c, whose rounding error is of order eps * (||x||^2 + ||c||^2)
    per sample, while the true distance is ~0.01 * D: the naive loss is wrong by far more than its
    value. gather subtracts first and stays within a few eps. Both facts are asserted.
    """
    g = torch.Generator().manual_seed(1)
    batch, classes, dim = 64, 10, 64
    centers = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    centers = 20 * centers / centers.norm(dim=1, keepdim=True)
    labels = torch.randint(0, classes, (batch,), generator=g)
    features = centers[labels] + 0.1 * torch.randn(batch, dim, generator=g, dtype=torch.float64) / dim**0.5
    dtype, eps = torch.bfloat16, 2**-8
    x, c = features.to(dtype), centers.to(dtype)
    ref = reference_loss(x, labels, c).item()  # the exact loss of the rounded inputs

    naive_abs_error = abs(center_loss(x, labels, c, variant="naive").item() - ref)
    gather_error = abs(center_loss(x, labels, c, variant="gather").item() - ref) / ref

    # Each sample's naive distance carries rounding of order eps * (||x||^2 + ||c||^2); the loss
    # averages B of them, so one such unit bounds the error (measured here: ~0.05 to 0.08 of it).
    norms = 2 * 20.0**2
    assert naive_abs_error <= eps * norms
    assert naive_abs_error > ref  # wrong by more than the loss itself (measured: 13x to 20x)
    assert gather_error <= 4 * eps


def test_compiled_is_not_listed_on_a_cpu_without_a_cxx_compiler(monkeypatch):
    monkeypatch.setenv("PATH", "")  # inductor's C++ backend finds no compiler
    assert not compile_available("cpu") and "compiled" not in available_variants("cpu")


def _compiled_available():
    if "compiled" not in available_variants("cpu"):
        pytest.skip("torch.compile cannot build code on this machine")


def test_compiled_builds_one_graph_for_every_convention():
    """The convention's factor is applied outside the compiled function, so changing it never recompiles."""
    _compiled_available()
    features, labels, centers = make_case("odd-duplicates-absent", torch.float32)
    center_loss(features.requires_grad_(), labels, centers, variant="compiled")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for convention in CONVENTIONS.names():
        loss = center_loss(features, labels, centers, variant="compiled", convention=convention)
        assert normwise_error(loss, reference_loss(features, labels, centers, convention)) <= TOL[torch.float32]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


@pytest.mark.slow  # 16 compilations
def test_compiled_stays_compiled_past_dynamos_default_recompile_limit():
    """dynamo recompiles per dtype, grad state and thread count, and past its recompile limit (8 by default) it
    would silently run the function eagerly: `compiled` would then time eager code. 16 guard states here; with
    the limit hit made an error, any eager fallback fails the test."""
    _compiled_available()
    threads = torch.get_num_threads()
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            for num_threads in (1, 2):
                torch.set_num_threads(num_threads)
                for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
                    for requires_grad in (True, False):
                        features, labels, centers = make_case("odd-duplicates-absent", dtype)
                        loss = center_loss(features.requires_grad_(requires_grad), labels, centers,
                                           variant="compiled")
                        error = normwise_error(loss, reference_loss(features, labels, centers))
                        assert error <= TOL[dtype], (num_threads, dtype, requires_grad, error)
    finally:
        torch.set_num_threads(threads)
