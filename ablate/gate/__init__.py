"""The CI performance gate: a change's speed judged on the machine that runs it, never against a number kept
from elsewhere (`ablate gate`, `make gate`).

    cases            the gate cases: a variant, a mode and a size each, called through the public API
    ab               the A/B comparison of the working tree with a base revision, by the three signals below
    sides            each side's tree (the working tree; a revision in a git worktree) and its worker processes
    worker           one side's worker process, run from its source in that side's tree (its protocol)
    verdicts         how each signal decides: counts, instructions, the wall clock's bootstrap interval
    counting         work counts of one call: ATen ops, FLOPs, bytes allocated, peak (exact)
    expected_counts  the gate cases' counts committed in expected_counts.json, and how two sets compare
    instructions     instructions per call under valgrind's callgrind, one process per side
    scaling          scaling laws: how time must grow with the number of classes, whatever the machine
    baseline         per-machine time ratios in baseline.json: printed beside the gate, never a failure
    cli              `ablate gate run`, `ablate gate counts`, `ablate gate baseline`
"""
