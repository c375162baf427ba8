"""Benchmarks of the center-loss variants: the suite (`ablate bench run`) and the distributed bench
(`ablate bench world`). The CI performance gate, which times and counts some of the same workloads, is
ablate/gate/.

    suites       declared studies (sweeps of batch x classes x dim x dtype per mode; numerics; training steps)
    cost         bytes each variant moves per mode, and the memory it needs
    timer        interleaved timing: torch.utils.benchmark on the CPU, CUDA events via do_bench on CUDA
    workloads    the inputs and the one call that is timed per variant and mode
    numerics     loss and gradient errors against the float64 reference
    train_step   samples/s of a whole training step per variant
    runner       a suite into RUN_DIR (tables, provenance, resume)
    distributed  time, bytes and memory per step of the distributed placements (`ablate bench world`)
    allocator    glibc malloc's thresholds fixed in the measuring process (the gate's workers, the ranks)
    cli          `ablate bench run` and `ablate bench world`
"""
