"""Benchmarks of the center-loss variants and the CI performance gate.

    suites     declared studies (sweeps of batch x classes x dim x dtype per mode; numerics; training steps)
    cost       bytes each variant moves per mode, and the memory it needs
    timer      interleaved timing: torch.utils.benchmark on the CPU, CUDA events via do_bench on CUDA
    workloads  the inputs and the one call that is timed per variant and mode
    numerics   loss and gradient errors against the float64 reference
    train_step samples/s of a whole training step per variant
    runner     a suite into RUN_DIR (tables, provenance, resume)
    gate       the gate's cases, and per-machine baselines of their time ratios (information only)
    ab         the A/B gate: working tree against a base revision, interleaved, with a bootstrap interval
    ab_worker  one side of the A/B gate, run in that side's tree
    scaling    scaling laws: how time must grow with the number of classes, whatever the machine
    distributed  time, bytes and memory per step of the distributed placements (`ablate bench --world N`)
    allocator  glibc malloc's thresholds fixed in the measuring process (the gate's workers, the ranks)
    cli        `ablate bench` and `ablate bench run`; gate_cli: `ablate bench gate` and `ablate bench baseline`
"""
