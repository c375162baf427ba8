"""glibc malloc's thresholds, fixed in the calling process, so that a measurement does not depend on the
allocator's history.

glibc moves its mmap threshold with each process's history of frees (up to 32 MiB): one of two identical
processes may serve every (B, D) temporary by a fresh mmap and page faults while the other reuses its heap, and
pages freed to the heap stay resident. Setting a threshold fixes it (and stops the moving).

One mechanism, mallopt, called by the process that measures, rather than the MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ environment variables: the variables reach only a process started with them (exec), after
they are set; the ranks of `ablate bench world` are forks of torch's forkserver, which may have started before
and would keep its own environment, and setting them in the parent would leak into every process it starts
later. mallopt acts on the process that calls it, however it was started, from that call on: every measured
allocation comes after it. Where the C library is not glibc, nothing is set and the caller is told.

This module imports nothing from ablate: the A/B gate's workers load it by path (ablate/gate/worker.py),
whichever revision they import.
"""

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def fix_malloc_thresholds(*, mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """Allocations of at least mmap_threshold bytes get a mapping of their own (returned to the system when freed),
    smaller ones come from the heap; the heap gives back its top only beyond trim_threshold (None: glibc's
    default, no longer moved). Returns False, having set nothing, where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    settings = [(M_MMAP_THRESHOLD, mmap_threshold)] + ([] if trim_threshold is None else [(M_TRIM_THRESHOLD,
                                                                                          trim_threshold)])
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)  # mallopt returns 1 on success
