"""The CI performance gate.

pytest-benchmark records absolute times (read them with `pytest-benchmark compare`); they are never
asserted. What is asserted is the ratio gate: each variant's time over a fixed reference workload,
measured in this process, against the committed baseline, and that an injected slowdown fails it.
"""

from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from ablate.bench import gate
from ablate.bench.workloads import call, clustered_inputs
from ablate.cli import main
from ablate.loss.reference import reference_grads
from ablate.loss.registry import REGISTRY

CASES = {case.name: case for case in gate.CASES}


@pytest.fixture
def one_thread():
    """Time on one thread, as the gate does: steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(gate.GATE_TIMING.threads)
    yield
    torch.set_num_threads(threads)


@pytest.mark.benchmark(max_time=0.5, min_rounds=5)
@pytest.mark.parametrize("case", gate.CASES, ids=lambda case: case.name)
def test_benchmark_case_and_check_what_it_computed(benchmark, one_thread, case):
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, "cpu")
    before = centers.clone()
    fn = call(case.variant, case.mode, features, labels, centers, rule=case.rule)
    benchmark.group = f"{case.mode} B={case.batch} C={case.classes} D={case.dim} float32"
    benchmark.extra_info.update(variant=case.variant, mode=case.mode, batch=case.batch, classes=case.classes,
                                dim=case.dim)
    benchmark(fn)
    if case.mode == "update":  # one more step from known centers: touched rows move toward their class means
        centers.copy_(before)
        fn()
        touched = torch.zeros(case.classes, dtype=torch.bool).index_fill_(0, labels, True)
        assert torch.equal(centers[~touched], before[~touched])
        sums = torch.zeros_like(centers).index_add_(0, labels, features.detach())
        means = sums[touched] / torch.bincount(labels, minlength=case.classes)[touched].unsqueeze(1)
        assert ((centers[touched] - means).norm(dim=1) < (before[touched] - means).norm(dim=1)).all()
    else:
        expected, _ = reference_grads(features.detach(), labels, centers)
        torch.testing.assert_close(features.grad.double(), expected, rtol=1e-4, atol=1e-7)


def test_ratios_stay_within_the_committed_baseline():
    table = gate.check(gate.load_baseline())
    assert table["passed"].all(), "\n" + table.to_string()


@pytest.fixture
def gather_four_times_slower(monkeypatch):
    """Injects a slowdown into `gather`: its loss is computed four times, one kept."""
    gather = REGISTRY["gather"]

    def slowed(features, labels, centers, convention):
        for _ in range(3):
            gather.loss(features, labels, centers, convention)
        return gather.loss(features, labels, centers, convention)

    monkeypatch.setitem(REGISTRY, "gather", replace(gather, loss=slowed))


def test_injected_slowdown_fails_the_gate(gather_four_times_slower):
    table = gate.check(gate.load_baseline(), cases=(CASES["gather_full_vs_copy"],))
    assert not table["passed"].any(), "\n" + table.to_string()
    assert table["attempts"].iloc[0] == gate.ATTEMPTS
    assert table["change"].iloc[0] > 1.0  # forward is about half of forward + backward: about 2.5x in all


def test_gate_command_exits_nonzero_on_the_injected_slowdown(gather_four_times_slower):
    result = CliRunner().invoke(main, ["bench", "--gate"])
    assert result.exit_code == 1
    failure = result.output.strip().splitlines()[-1]
    assert failure.startswith("Error: performance gate failed for") and "gather_full_vs_copy" in failure


def test_a_case_fails_only_when_over_its_limit_in_every_attempt():
    case = CASES["gather_full_vs_copy"]
    limit = 2.0 * (1 + gate.TOLERANCE)

    def measured(*ratios):
        queue = list(ratios)
        return lambda _: queue.pop(0)

    table = gate.check({case.name: 2.0}, cases=(case,), measure=measured(limit * 1.2, limit))
    assert table["passed"].all() and table["attempts"].iloc[0] == 2  # noise once, then the limit itself: passes
    table = gate.check({case.name: 2.0}, cases=(case,), measure=measured(*[limit * 1.01] * gate.ATTEMPTS))
    assert not table["passed"].any() and table["change"].iloc[0] == pytest.approx((1 + gate.TOLERANCE) * 1.01 - 1)


def test_baseline_round_trip_and_missing_entries_name_the_fix(tmp_path):
    path = gate.write_baseline({"a": 2.0, "b": 3.0}, tmp_path / "baseline.json")
    assert gate.load_baseline(path) == {"a": 2.0, "b": 3.0}
    with pytest.raises(KeyError, match="no ratio for gather_full_vs_copy; refresh it with `make bench-baseline`"):
        gate.check({"a": 2.0}, cases=(CASES["gather_full_vs_copy"],))
    with pytest.raises(FileNotFoundError, match="make bench-baseline"):
        gate.load_baseline(tmp_path / "absent.json")


def test_committed_baseline_covers_every_case():
    assert set(gate.load_baseline()) == set(CASES)
