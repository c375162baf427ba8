"""Benchmarks of the center-loss variants and the CI performance gate.

    suites     declared studies (sweeps of batch x classes x dim x dtype per mode; numerics; training steps)
    cost       bytes each variant moves per mode, and the memory it needs
    timer      interleaved timing: torch.utils.benchmark on the CPU, CUDA events via do_bench on CUDA
    workloads  the inputs and the one call that is timed per variant and mode
    numerics   loss and gradient errors against the float64 reference
    train_step samples/s of a whole training step per variant
    runner     a suite into RUN_DIR (tables, provenance, resume)
    gate       same-process time ratios against ablate/bench/baseline.json
    cli        `ablate bench`
"""
