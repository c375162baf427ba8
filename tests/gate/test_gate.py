"""The performance gate: A/B against a base revision, scaling laws, per-machine baselines.

pytest-benchmark records absolute times (read them with `pytest-benchmark compare`); they are never
asserted. What is asserted is measured on this machine in this run: the working tree against its parent
commit (interleaved, with a bootstrap interval), the scaling laws, and that injected slowdowns fail them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ablate.bench.workloads import UPDATE_ALPHA, call, clustered_inputs
from ablate.cli import main
from ablate.gate import ab, baseline, expected_counts, scaling, verdicts
from ablate.gate import instructions as ab_instructions
from ablate.gate.cases import CASES as GATE_CASES
from ablate.gate.counting import count_work
from ablate.gate.sides import GateError, head_tree, side_env
from ablate.gitrepo import git
from ablate.loss import update_centers
from ablate.loss.reference import reference_grads
from tests.support import ROOT

CASES = {case.name: case for case in GATE_CASES}
LAWS = {law.name: law for law in scaling.LAWS}
# CI's threshold for the A/B against the parent commit, looser than a user's default (ab.DEFAULT_THRESHOLD):
# identical code, 20 runs x 3 cases on an AMD EPYC 2-core machine at load average 10-13, never failed at 0.10
# (highest lower bound of an interval 0.99); 0.25 leaves a margin for a noisier host, and a 2x slowdown still fails.
CI_THRESHOLD = 0.25
GIT = shutil.which("git")


@pytest.fixture
def one_thread():
    """Time on one thread, as the gate does: steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(baseline.GATE_TIMING.threads)
    yield
    torch.set_num_threads(threads)


@pytest.mark.benchmark(max_time=0.5, min_rounds=5)
@pytest.mark.parametrize("case", GATE_CASES, ids=lambda case: case.name)
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


# --- scaling laws ---------------------------------------------------------------------------------------

# CI's slack on the scaling laws (a user's default is 1): 20 runs of the three laws at load average 10-13 all
# held at 1 after retries, but one run of the whole suite saw gather at 1.45x in three attempts in a row under
# that load; a dense step or a stray (B, C) temporary grows 20x to 100x, far past 1.5 x the bounds.
LAW_CI_SLACK = 1.5


@pytest.mark.slow  # timing; `make gate` checks the laws
@pytest.mark.parametrize("law", scaling.LAWS, ids=lambda law: law.name)
def test_scaling_law_holds(law):
    table = scaling.check_laws((law,), slack=LAW_CI_SLACK)
    assert table["holds"].all(), "\n" + table.to_string()


def dense_paper_update(variant, mode, features, labels, centers, rule):
    """Eq. 4 computed right but densely: a (C, D) delta and a step over every row, O(C*D) per call."""
    def step():
        x = features.detach()
        delta = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - x)  # (C, D)
        counts = torch.bincount(labels, minlength=centers.shape[0]).unsqueeze(1)  # (C, 1)
        centers.sub_(UPDATE_ALPHA * delta / (1 + counts))
    return step


@pytest.mark.slow  # timing: three attempts of a law
def test_the_dense_update_is_right_and_the_update_law_fails_it():
    features, labels, centers = clustered_inputs(64, 50, 7, torch.float64, "cpu")
    expected = centers.clone()
    update_centers(expected, features, labels, alpha=UPDATE_ALPHA, rule="paper")
    dense_paper_update("gather", "update", features, labels, centers, "paper")()
    torch.testing.assert_close(centers, expected, rtol=0, atol=1e-12)  # the law catches the cost, not a wrong value

    law = LAWS["update_cost_follows_rows"]
    table = scaling.check_laws((law,), slack=LAW_CI_SLACK,
                               prepare=lambda law: scaling.prepare_growth(law, make_call=dense_paper_update))
    assert not table["holds"].any() and table["attempts"].iloc[0] == scaling.ATTEMPTS, "\n" + table.to_string()
    assert table["growth"].iloc[0] > 2 * law.limit(LAW_CI_SLACK)  # O(C*D) at 20x the classes: far past the bound


def test_a_law_fails_only_when_broken_in_every_attempt():
    law = LAWS["gather_cost_independent_of_classes"]
    queue = [law.bound * 3, law.bound]
    table = scaling.check_laws((law,), prepare=lambda _: lambda: queue.pop(0))
    assert table["holds"].all() and table["attempts"].iloc[0] == 2  # noise once, then the bound itself: holds
    at_least = LAWS["naive_cost_grows_with_classes"]
    table = scaling.check_laws((at_least,), prepare=lambda _: lambda: at_least.bound * 0.9)
    assert not table["holds"].any() and table["attempts"].iloc[0] == scaling.ATTEMPTS


def test_slack_loosens_each_kind_of_bound_and_never_tightens():
    at_most, at_least = LAWS["gather_cost_independent_of_classes"], LAWS["naive_cost_grows_with_classes"]
    assert not at_most.holds(1.45) and at_most.holds(1.45, slack=1.5) and not at_most.holds(2.0, slack=1.5)
    assert not at_least.holds(4.0) and at_least.holds(4.0, slack=1.5) and not at_least.holds(3.0, slack=1.5)
    with pytest.raises(ValueError, match="expected at least 1"):
        scaling.check_laws((at_most,), slack=0.5)


# --- work counts ---------------------------------------------------------------------------------------

def test_work_counts_match_the_committed_expected_counts():
    """Exact on every machine with this torch: any change of an op's calls, FLOPs, bytes or peak above 1%, or a
    new op, fails here; `ablate gate counts --write` refreshes the file when a change is meant."""
    expected = expected_counts.load()
    assert set(expected["cases"]) == set(CASES)
    assert expected_counts.check(expected, expected_counts.measure()) == []


def test_an_extra_copy_on_the_public_path_is_named_by_case_op_and_bytes(monkeypatch):
    case = CASES["gather_full_vs_copy"]
    expected = {case.name: expected_counts.measure_case(case)}
    public = expected_counts.center_loss
    monkeypatch.setattr(expected_counts, "center_loss", lambda features, *args, **kwargs:
                        public(features.clone(), *args, **kwargs))  # one more (B, D) tensor per call
    lines = expected_counts.check({"torch": torch.__version__, "cases": expected},
                                  {case.name: expected_counts.measure_case(case)})
    copy = case.batch * case.dim * 4
    before = expected[case.name]["bytes"]
    assert f"{case.name}: new op aten.clone.default (1 calls)" in lines
    assert f"{case.name}: bytes {before:,} -> {before + copy:,} ({copy / before:+.1%})" in lines
    verdict, moved = verdicts.counts_verdict(expected[case.name], expected_counts.measure_case(case))
    assert verdict == "fail" and f"bytes {before:,} -> {before + copy:,}" in moved


def test_counts_see_ops_flops_views_and_the_peak():
    x, w = torch.ones(64, 32), torch.ones(32, 16)
    counts = count_work(lambda: (x @ w).t().sum())  # (64, 16) product; the transpose is a view
    assert counts["ops"] == {"aten.mm.default": 1, "aten.t.default": 1, "aten.sum.default": 1}
    assert counts["flops"] == 2 * 64 * 32 * 16
    assert counts["bytes"] == 64 * 16 * 4 + 4 and counts["peak_bytes"] == 64 * 16 * 4 + 4

    def transient():
        for _ in range(3):
            x.clone()  # freed before the next: three allocations, one alive at a time
    counts = count_work(transient)
    assert counts["bytes"] == 3 * x.nbytes and counts["peak_bytes"] == x.nbytes
    assert count_work(lambda: x.mul_(1.0))["bytes"] == 0  # in place: nothing new


def test_counts_that_move_either_way_differ_and_only_more_work_fails():
    base = {"ops": {"aten.a": 10, "aten.b": 1}, "flops": 0, "bytes": 1000, "peak_bytes": 500}
    same = {**base, "bytes": 1009}  # within 1%
    assert expected_counts.changes(base, same) == [] and verdicts.counts_verdict(base, same) == ("pass", "")
    less = {**base, "ops": {"aten.a": 10}, "bytes": 800}
    verdict, moved = verdicts.counts_verdict(base, less)
    assert verdict == "less" and moved == "op aten.b gone (was 1 calls); bytes 1,000 -> 800 (-20.0%)"
    assert verdicts.counts_verdict(base, {**base, "peak_bytes": 600})[0] == "fail"
    assert expected_counts.check({"torch": "0.0", "cases": {}}, {})[0].startswith(
        "the expected counts were recorded with torch 0.0")


def test_a_malformed_expected_counts_file_is_named(tmp_path):
    path = tmp_path / "expected_counts.json"
    for text in ("[]", '{"torch": "2", "cases": {"a": {"ops": 3}}}', "not json"):
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{path} is not an expected-counts file.*ablate gate counts --write"):
            expected_counts.load(path)


# --- the A/B decision -----------------------------------------------------------------------------------

def _rounds(factor: float, seed: int, rounds: int = 15):
    """Per-round times of a base with 3% noise and drift, and a head `factor` times slower, as the gate sees them."""
    rng = np.random.default_rng(seed)
    drift = np.linspace(1.0, 1.3, rounds)  # the machine slows down during the run: both sides alike
    base = drift * (1 + 0.03 * rng.standard_normal(rounds))
    head = factor * drift * (1 + 0.03 * rng.standard_normal(rounds))
    return base, head


@pytest.mark.parametrize("factor, expected", [(1.0, "pass"), (1.05, "pass"), (2.0, "fail"), (0.5, "faster")])
def test_decision_on_paired_rounds(factor, expected):
    for seed in range(20):
        ratio, low, high = verdicts.ratio_interval(*_rounds(factor, seed))
        assert low <= ratio <= high
        assert verdicts.wall_verdict(low, high, ab.DEFAULT_THRESHOLD) == expected, (seed, ratio, low, high)


# --- the A/B gate on real revisions ----------------------------------------------------------------------

needs_git = pytest.mark.skipif(GIT is None, reason="the A/B gate needs git on PATH")


def _git(repo, *args) -> str:
    out = git(repo, *args, timeout=120)
    assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


def _has_parent(repo) -> str | None:
    """None if the A/B against the parent can run in `repo`, else the one-line reason why not."""
    if GIT is None:
        return "no git on PATH"
    inside = git(repo, "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}", timeout=120)
    return None if inside.returncode == 0 else "no git history here (not a checkout, or a shallow clone)"


@pytest.mark.slow  # a full A/B: `make gate` runs it
def test_working_tree_is_not_slower_than_its_parent_commit():
    why_not = _has_parent(ROOT)
    if why_not:
        pytest.skip(f"A/B against the parent commit skipped: {why_not}")
    table, sides = ab.compare(ROOT, "HEAD~1", signals=ab.Signals(threshold=CI_THRESHOLD), allow_dirty=True)
    assert set(table["verdict"]) <= {"pass", "faster", "new"}, f"{sides}\n{table.to_string()}"


@pytest.fixture
def scratch_repo(tmp_path):
    """A clone of this repository's HEAD, to commit deliberate changes into."""
    if GIT is None:
        pytest.skip("the A/B gate needs git on PATH")
    repo = tmp_path / "scratch"
    _git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo))
    _git(repo, "config", "user.email", "gate@example.invalid")
    _git(repo, "config", "user.name", "gate test")
    return repo


def _append(repo, path: str, text: str) -> None:
    with open(repo / path, "a") as f:
        f.write(textwrap.dedent(text))


SLOWER_GATHER = """
    _exact_gather = gather_center_loss


    def gather_center_loss(features, labels, centers, convention):
        # twice the work, forward and backward: the mean of two identical losses
        return 0.5 * (_exact_gather(features, labels, centers, convention)
                      + _exact_gather(features, labels, centers, convention))
"""

SLIGHTLY_SLOWER_UPDATE = """
    import time as _time

    _exact_rows = torch_updated_rows


    def torch_updated_rows(*args, **kwargs):
        # spins 5% of its own time longer: at most 1.05x of an update step
        start = _time.perf_counter()
        result = _exact_rows(*args, **kwargs)
        until = _time.perf_counter() + 0.05 * (_time.perf_counter() - start)
        while _time.perf_counter() < until:
            pass
        return result
"""

NO_NAIVE_YET = """
    def naive_center_loss(features, labels, centers, convention):
        raise NotImplementedError("naive arrives in the next commit")
"""


@pytest.mark.slow  # a full wall-clock A/B of three cases
def test_ab_fails_a_2x_slowdown_passes_a_5_percent_one_and_calls_an_unrunnable_base_new(scratch_repo):
    """One comparison, three cases: base is HEAD~1, which cannot run naive; head brings naive back, makes
    gather twice as slow and the update 5% slower."""
    _append(scratch_repo, "ablate/loss/naive.py", NO_NAIVE_YET)
    _git(scratch_repo, "commit", "--quiet", "-am", "base without naive")
    _git(scratch_repo, "revert", "--no-commit", "HEAD")
    _append(scratch_repo, "ablate/loss/gather.py", SLOWER_GATHER)
    _append(scratch_repo, "ablate/loss/updates.py", SLIGHTLY_SLOWER_UPDATE)
    _git(scratch_repo, "commit", "--quiet", "-am", "naive back; gather twice as slow; the update 5% slower")
    table, _ = ab.compare(scratch_repo, "HEAD~1", signals=ab.Signals(names=("wall",)))
    rows = table.set_index("case")
    gather = rows.loc["gather_full_vs_copy"]
    assert gather["wall"] == "fail" and 1 + ab.DEFAULT_THRESHOLD < gather["ci_low"] <= gather["ratio"] <= \
        gather["ci_high"], table.to_string()
    assert rows.loc["update_paper_vs_copy", "wall"] == "pass", table.to_string()
    assert rows.loc["naive_full_vs_matmul", "verdict"] == "new", table.to_string()
    assert "naive arrives in the next commit" in rows.loc["naive_full_vs_matmul", "note"]


def test_a_base_without_the_public_api_is_a_clear_error(scratch_repo):
    (scratch_repo / "ablate/loss/__init__.py").write_text('"""No public API yet."""\n')
    _git(scratch_repo, "commit", "--quiet", "-am", "base without the public API")
    _git(scratch_repo, "revert", "--no-edit", "--quiet", "HEAD")
    result = CliRunner().invoke(main, ["gate", "run", "--against", "HEAD~1", "--repo", str(scratch_repo),
                                       "--no-laws", "--no-baseline"])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: HEAD~1 (") and "does not provide the public API" in message
    assert "ImportError: cannot import name" in message and "Traceback" not in result.output


@needs_git
def test_an_unknown_revision_is_a_clear_error():
    result = CliRunner().invoke(main, ["gate", "run", "--against", "no-such-revision", "--repo", str(ROOT),
                                       "--allow-dirty", "--no-laws", "--no-baseline"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: unknown revision 'no-such-revision'" in result.output


def test_a_dirty_tree_is_refused_unless_allowed(scratch_repo):
    with open(scratch_repo / "README.md", "a") as f:
        f.write("an uncommitted line\n")
    with pytest.raises(GateError, match=r"uncommitted changes to 1 tracked file\(s\) \(README.md\).*--allow-dirty"):
        ab.compare(scratch_repo, "HEAD")
    assert head_tree(scratch_repo, allow_dirty=True).description.endswith("+ uncommitted changes)")


def test_no_checkout_and_no_git_are_clear_errors(tmp_path, monkeypatch):
    if GIT is not None:
        with pytest.raises(GateError, match="is not inside a git checkout"):
            ab.compare(tmp_path, "HEAD")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GateError, match="needs git on PATH"):
        ab.compare(tmp_path, "HEAD")


def test_too_few_rounds_for_an_interval_and_unknown_signals_are_refused():
    with pytest.raises(ValueError, match="rounds must be at least 5"):
        ab.Signals(rounds=3)
    with pytest.raises(ValueError, match="unknown signal.*expected some of counts, instructions, wall"):
        ab.Signals(names=("counts", "speed"))


# --- baselines that inform ------------------------------------------------------------------------------

def test_baselines_are_kept_per_machine_and_compared_only_on_the_same_one(tmp_path):
    path = tmp_path / "baseline.json"
    other = "Some Other CPU | 64 cores | torch 0.0"
    baseline.write_baseline({"a": 2.0}, path)
    machines = baseline.load_baselines(path)
    machines[other] = {"ratios": {"a": 9.0}}
    path.write_text(json.dumps({"machines": machines}))
    baseline.write_baseline({"a": 3.0}, path)  # this machine's entry replaced, the other kept
    machines = baseline.load_baselines(path)
    assert machines[baseline.fingerprint()]["ratios"] == {"a": 3.0} and machines[other]["ratios"] == {"a": 9.0}
    table = baseline.compare_with_baseline({"a": 3.3}, machines, baseline.fingerprint())
    assert table["change"].iloc[0] == pytest.approx(0.1)
    assert baseline.compare_with_baseline({"a": 3.3}, {other: machines[other]}, baseline.fingerprint()) is None


def test_a_malformed_baseline_file_is_named(tmp_path):
    path = tmp_path / "baseline.json"
    for text in ("[]", '{"ratios": {"a": 1}}', '{"machines": {"x": {"ratios": 3}}}', "not json"):
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{path} is not a gate baseline file"):
            baseline.load_baselines(path)
    assert baseline.load_baselines(tmp_path / "absent.json") == {}


def test_committed_baselines_cover_every_case():
    machines = baseline.load_baselines()
    assert machines and all(set(entry["ratios"]) == set(CASES) for entry in machines.values())


def test_gate_without_a_baseline_for_this_machine_prints_a_note(monkeypatch):
    monkeypatch.setattr(baseline, "fingerprint", lambda: "A CPU nobody measured | 3 cores | torch 0.0")
    result = CliRunner().invoke(main, ["gate", "run", "--no-laws"])
    assert result.exit_code == 0, result.output
    assert "no baseline for this machine (A CPU nobody measured | 3 cores | torch 0.0)" in result.output
    assert "never fail" in result.output



# --- the Done-when changes, each in a scratch commit ------------------------------------------------------

ONE_EXTRA_COPY = """
    _checked_loss = center_loss


    def center_loss(features, labels, centers, **kwargs):
        # one more (B, D) tensor per call on the public path
        return _checked_loss(features.clone(), labels, centers, **kwargs)
"""

def _failing_gate(repo, path: str, change: str, message: str, *options) -> tuple:
    """Commit `change` appended to `path` in the scratch repo, run the gate against its parent, expect a failure;
    returns (result, the output from 'performance gate failed' on)."""
    _append(repo, path, change)
    _git(repo, "commit", "--quiet", "-am", message)
    result = CliRunner().invoke(main, ["gate", "run", "--against", "HEAD~1", "--repo", str(repo), *options,
                                       "--no-laws", "--no-baseline"])
    assert result.exit_code == 1, result.output
    return result, result.output[result.output.index("performance gate failed"):]


CHATTY_IMPORT = """
    print('{"ready": false}')  # what a base may print at import: never read as a reply
    print("loading ablate ...")
"""


def test_an_extra_copy_fails_by_counts_naming_case_and_bytes_whatever_the_base_prints(scratch_repo):
    """The base prints JSON-looking lines at import; the head adds one (B, D) copy to `center_loss`."""
    _append(scratch_repo, "ablate/__init__.py", CHATTY_IMPORT)
    _git(scratch_repo, "commit", "--quiet", "-am", "a base that prints at import")
    result, failure = _failing_gate(scratch_repo, "ablate/loss/functional.py", ONE_EXTRA_COPY, "one extra copy",
                                    "--signal", "counts")
    for case in CASES.values():  # every case calls center_loss but the update
        copy = case.batch * case.dim * 4
        if case.mode == "update":
            assert case.name not in failure, result.output
            continue
        line = next(line for line in failure.splitlines() if case.name in line)
        assert "does more work" in line and "new op aten.clone.default (1 calls)" in line, result.output
        before = expected_counts.load()["cases"][case.name]["bytes"]
        if copy > expected_counts.TOLERANCE * before:  # naive's (B, C) work dwarfs a (B, D) copy: only its op shows
            assert f"bytes {before:,} -> {before + copy:,}" in line, result.output


THREE_TIMES_SLOWER_UPDATE = """
    _exact_rows = torch_updated_rows


    def torch_updated_rows(*args, **kwargs):
        # the same step computed three times: three times the work of the update's core
        _exact_rows(*args, **kwargs)
        _exact_rows(*args, **kwargs)
        return _exact_rows(*args, **kwargs)
"""


@pytest.mark.slow  # valgrind and a wall-clock A/B of one case
def test_a_three_times_slower_update_fails_by_instructions_and_wall_clock(scratch_repo):
    if ab_instructions.unavailable():
        pytest.skip(f"instruction gate skipped: {ab_instructions.unavailable()}")
    result, failure = _failing_gate(scratch_repo, "ablate/loss/updates.py", THREE_TIMES_SLOWER_UPDATE,
                                    "the update three times slower", "--case", "update_paper_vs_copy")
    assert "update_paper_vs_copy executes x" in failure and "the instructions (limit 1.02)" in failure, result.output
    assert "update_paper_vs_copy x" in failure and "95% CI [" in failure, result.output
    assert "does more work" in failure  # the repeated ops are counted too


@needs_git
def test_a_revision_string_past_any_ref_name_is_one_line_error():
    result = CliRunner().invoke(main, ["gate", "run", "--against", "x" * 100_000, "--repo", str(ROOT),
                                       "--allow-dirty", "--no-laws", "--no-baseline"])
    assert result.exit_code == 1 and "Traceback" not in result.output and len(result.output) < 500


# --- SIGTERM and SIGHUP ------------------------------------------------------------------------------------

def _marked_processes(mark: str) -> list:
    """Pids of live processes whose environment holds `mark`: the gate and everything it started, however
    reparented."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return pids


def _wait_for(condition, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow  # a gate started and stopped at four moments
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds leftover processes through /proc")
def test_sigterm_or_sighup_at_any_moment_leaves_no_process_worktree_or_temp_folder(scratch_repo, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    moments = {
        "at start-up": lambda mark: True,
        "once the base is checked out": lambda mark: any(temp.glob("ablate-gate-base-*")),
        "while the workers start": lambda mark: len(_marked_processes(mark)) >= 3,
        "during the timing": lambda mark: any(temp.glob("ablate-gate-inputs-*")) and len(_marked_processes(mark)) >= 7,
    }
    for n, (moment, reached) in enumerate(moments.items()):
        mark = f"ABLATE_GATE_SIGNAL_TEST_{os.getpid()}_{n}"
        sig = signal.SIGHUP if n == 2 else signal.SIGTERM
        process = subprocess.Popen(
            [sys.executable, "-m", "ablate", "gate", "run", "--against", "HEAD", "--repo", str(scratch_repo),
             "--signal", "counts", "--signal", "wall", "--no-laws", "--no-baseline"],
            cwd=ROOT, env={**os.environ, "TMPDIR": str(temp), mark: "1"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        try:
            assert _wait_for(lambda: reached(mark) or process.poll() is not None), moment
            assert process.poll() is None, f"the gate ended before {moment}: {process.stderr.read()}"
            process.send_signal(sig)
            _, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode in (128 + sig, -sig), (moment, stderr[-2000:])  # -sig: before the handler
        if n:  # past start-up, the gate says why it stopped; at start-up the default action may come first
            assert f"stopped by {sig.name}" in stderr and "Traceback" not in stderr, (moment, stderr)
        assert _wait_for(lambda: not _marked_processes(mark), timeout=30), (moment, _marked_processes(mark))
        left = list(temp.iterdir())  # torch's compile cache included: the gate gives it a temp folder of its own
        assert left == [], (moment, left)
        assert len(_git(scratch_repo, "worktree", "list").splitlines()) == 1, moment


def test_the_gate_compiles_into_a_cache_of_its_own_that_it_removes(tmp_path, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    from ablate.gate.cli import COMPILE_CACHE_ENV, own_compile_cache

    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with own_compile_cache() as folder:
        assert Path(cache_dir()) == folder and folder.parent == tmp_path  # where inductor writes, here and in workers
        assert side_env(head_tree(ROOT, allow_dirty=True))[COMPILE_CACHE_ENV] == str(folder)
    assert list(tmp_path.iterdir()) == [] and COMPILE_CACHE_ENV not in os.environ
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "mine"))
    with own_compile_cache() as folder:  # a cache the user named is theirs: used, kept
        assert folder == tmp_path / "mine"
    assert os.environ[COMPILE_CACHE_ENV] == str(tmp_path / "mine")
