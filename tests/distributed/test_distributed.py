"""Center loss across processes (gloo, world 2 and 3; nccl too where there are GPUs enough) equals one process
on the concatenated batches.

Each world runs once (a module fixture, ranks started by ablate.distributed.launch) over every form x rule x
convention x dtype for STEPS steps of loss, backward and update, with uneven and empty slices and uneven
shards (C = 7 over 2 and 3 ranks). float64 is compared with the float64 reference, float32 with the one-process
CenterLoss in float32.
"""

import itertools

import pytest
import torch

from ablate.distributed import shard_range
from ablate.distributed.launch import run_ranks
from ablate.loss import CONVENTIONS, RULES, CenterLoss
from ablate.loss.initial import initial_centers
from ablate.loss.reference import reference_grads, reference_loss, reference_update
from tests.support import distributed_ranks as ranks

# float64: the ranks add their partial sums in another order than one process (at most ~20 terms, rounding
# ~20 * 1.1e-16 relative), and a step moves the centers by a contraction of that: 1e-12 leaves a margin of
# ~100. float32: the same reordering at eps 6e-8, compounded over 50 steps of a contraction: 1e-5.
TOLERANCE = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}
FORMS = ("replicated", "sharded")
# The convention scales the loss, its gradients and the sgd step; paper and ema steps do not depend on it.
CASES = [(form, rule, convention, dtype) for form, rule, convention, dtype
         in itertools.product(FORMS, RULES.names(), CONVENTIONS.names(), ranks.DTYPES)
         if rule == "sgd" or convention == "half_mean"]
WORLDS = (2, 3)
GPUS = torch.cuda.device_count()
# World 3 on the CPU (three ranks on a 2-core CI machine: ~75 s) runs in the slow lane (`make test-all`); world 2
# keeps every form x rule x convention x dtype, uneven slices and an uneven shard in the fast lane.
RUNS = [("cpu", 2), pytest.param(("cpu", 3), marks=pytest.mark.slow)] + [  # nccl needs one GPU per rank
    pytest.param(("cuda", w), marks=[pytest.mark.gpu, pytest.mark.skipif(GPUS < w, reason=f"nccl needs {w} GPUs")])
    for w in WORLDS]


@pytest.fixture(scope="module", params=RUNS, ids=lambda run: f"{run[0]}-world{run[1]}")
def world_results(request):
    device, world = request.param
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABLATE_MAX_PROCESSES", str(world))  # three ranks (an uneven shard) on any machine
        return world, run_ranks(ranks.equivalence_run, world, (CASES, device), device=device, threads=1)


def one_process_run(case):
    """The same STEPS steps on the concatenated batches in one process: loss, dL/dX (B, D), centers after each."""
    form, rule, convention, dtype_name = case
    dtype = ranks.DTYPES[dtype_name]
    torch.manual_seed(0)
    if dtype == torch.float64:  # the readable reference, straight from the definitions
        centers = initial_centers(ranks.NUM_CLASSES, ranks.DIM, dtype=dtype)

        def step(features, labels):
            nonlocal centers
            loss = reference_loss(features, labels, centers, convention)
            grad = reference_grads(features, labels, centers, convention)[0]
            centers = reference_update(centers, features, labels, alpha=ranks.ALPHA, rule=rule, convention=convention)
            return float(loss), grad, centers
    else:
        crit = CenterLoss(ranks.NUM_CLASSES, ranks.DIM, convention=convention, rule=rule, alpha=ranks.ALPHA,
                          dtype=dtype)

        def step(features, labels):
            features = features.clone().requires_grad_(True)
            loss = crit(features, labels)
            loss.backward()
            crit.update(features.detach(), labels)
            return loss.item(), features.grad, crit.centers.detach().clone()
    return step


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_loss_gradients_and_centers_equal_one_process(world_results, case):
    world, results = world_results
    dtype_name = case[3]
    tol = TOLERANCE[dtype_name]
    step = one_process_run(case)
    for s in range(ranks.STEPS):
        features, labels, counts = ranks.global_batch(s, world, ranks.DTYPES[dtype_name])
        loss, grad, centers = step(features, labels)
        offsets = [0, *itertools.accumulate(counts)]
        for rank, out in enumerate(results):
            rank_out = out[case]
            torch.testing.assert_close(torch.tensor(rank_out["loss"][s]), torch.tensor(loss), **tol,
                                       msg=lambda m: f"loss, rank {rank}, step {s}: {m}")
            # DDP's convention: rank r's features get world * dL/dx (see ablate.distributed.centers)
            expected_grad = world * grad[offsets[rank]:offsets[rank + 1]].to(rank_out["grad"][s].dtype)
            torch.testing.assert_close(rank_out["grad"][s], expected_grad, **tol,
                                       msg=lambda m: f"dL/dx, rank {rank}, step {s}: {m}")
            lo, hi = rank_out["class_range"]  # replicated: (0, C)
            torch.testing.assert_close(rank_out["centers"][s], centers[lo:hi].to(rank_out["centers"][s].dtype), **tol,
                                       msg=lambda m: f"centers, rank {rank}, step {s}: {m}")
        if case[0] == "replicated":
            assert len({out[case]["hash"][s] for out in results}) == 1, f"ranks hold different centers after step {s}"
    for rank, out in enumerate(results):
        torch.testing.assert_close(out[case]["gathered"], centers.to(out[case]["gathered"].dtype), **tol,
                                   msg=lambda m: f"gathered centers after {ranks.STEPS} steps, rank {rank}: {m}")


def test_the_batches_cover_uneven_and_empty_slices():
    """The comparison above is only as good as its batches: they must include empty and unequal slices."""
    for world in WORLDS:
        counts = [ranks.global_batch(s, world, torch.float64)[2] for s in range(ranks.STEPS)]
        assert any(0 in c for c in counts) and any(len(set(c)) > 1 for c in counts)
        assert all(sum(c) > 0 for c in counts)


def test_shards_partition_the_classes_unevenly():
    for classes, world in ((7, 2), (7, 3), (2, 3), (10 ** 6, 3)):
        spans = [shard_range(classes, r, world) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == classes
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        sizes = [hi - lo for lo, hi in spans]
        assert max(sizes) - min(sizes) <= 1


def test_initial_centers_of_a_shard_are_its_rows_of_the_whole_table():
    """A shard draws only its rows; they must be the rows one process draws (blocks of 4096 rows straddled)."""
    torch.manual_seed(3)
    whole = initial_centers(10_000, 4)
    for lo, hi in ((0, 10_000), (4000, 9000), (4096, 4097), (5, 5)):
        torch.manual_seed(3)
        torch.testing.assert_close(initial_centers(10_000, 4, (lo, hi)), whole[lo:hi], rtol=0, atol=0)


def test_sgd_centers_in_ddp_take_the_one_process_step():
    """Rule sgd, centers a DDP Parameter, own SGD on grad / lambda: with this suite's replicated loss, DDP's
    average over ranks is exactly lambda * dL/dc of the global batch, so the 1/lambda rescaling is unchanged
    and 50 steps equal one process, under every convention and with uneven and empty slices."""
    world = 2
    final = run_ranks(ranks.ddp_sgd_run, world, (CONVENTIONS.names(), "replicated", ranks.STEPS), threads=1)
    for convention in CONVENTIONS.names():
        torch.manual_seed(0)
        centers = initial_centers(ranks.NUM_CLASSES, ranks.DIM, dtype=torch.float64)
        for s in range(ranks.STEPS):
            features, labels, _ = ranks.global_batch(s, world, torch.float64)
            centers = reference_update(centers, features, labels, alpha=ranks.ALPHA, rule="sgd", convention=convention)
        for rank_final in final:
            torch.testing.assert_close(rank_final[convention], centers, **TOLERANCE["float64"],
                                       msg=lambda m: f"{convention}: {m}")


def test_plain_ddp_of_a_local_loss_is_exact_only_with_a_batch_mean():
    """What DDP's averaging does to the 1/lambda rescaling when each rank uses its own one-process loss:
    the average of the ranks' s(b_r) * sum_{i in r} gives, with equal slices b_r = B/W, s(B) * sum under
    mean and half_mean (1/b_r = W/B cancels DDP's 1/W) but 1/W of it under half_sum (no 1/B to cancel):
    the centers move 1/W as far as one process. This suite's loss is exact under all three (test above)."""
    world, rows = 2, 4
    shares = {"mean": 1.0, "half_mean": 1.0, "half_sum": 1.0 / world}
    final = run_ranks(ranks.ddp_sgd_run, world, (tuple(shares), None, 1, rows), threads=1)
    torch.manual_seed(0)
    start = initial_centers(ranks.NUM_CLASSES, ranks.DIM, dtype=torch.float64)
    features, labels, _ = ranks.global_batch(0, world, torch.float64, rows)
    for convention, share in shares.items():
        one = reference_update(start, features, labels, alpha=ranks.ALPHA, rule="sgd", convention=convention)
        for rank_final in final:
            torch.testing.assert_close(rank_final[convention], start + share * (one - start), **TOLERANCE["float64"],
                                       msg=lambda m: f"{convention}: {m}")
