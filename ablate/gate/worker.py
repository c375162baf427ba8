"""One side of the A/B gate: a process that times and counts gate cases with whichever `ablate` its tree holds.

The gate runs this file's source with `python -c` in a checked-out tree (cwd and PYTHONPATH = the
tree), so `import ablate` resolves to that revision's code while this timing code is the same on both
sides. It therefore imports nothing from ablate but the public API that every revision keeps:
`ablate.loss.center_loss`, `update_centers` and `available_variants`; the work counting code
(ablate/gate/counting.py, torch only) and the allocator's settings (ablate/bench/allocator.py, standard library
only) are loaded from the head's files, whose paths the gate passes.

    python -c SOURCE REQUEST_FD REPLY_FD COUNTING_PY ALLOCATOR_PY          (timing and counting, the protocol below)
    valgrind --tool=callgrind ... python -c SOURCE callgrind SPEC_JSON RESULT_JSON ALLOCATOR_PY    (instructions)

Protocol: one JSON object per line on the pipe REQUEST_FD, one reply per line on the pipe REPLY_FD, so that
whatever the base prints (at import, in a warning) goes to stdout and stderr and never into a reply.
    (on start)                               -> {"ready": true, "ablate_file", "variants"} or {"error"}
    {"op": "prepare", "case": {...}, "inputs": path to a torch.save'd dict of features, labels, centers}
                                             -> {"ok": true} or {"unavailable": reason}
    {"op": "time", "case": name, "ms": budget} -> {"time_ms": per-call time}
    {"op": "count", "case": name}            -> {"counts": {"ops", "flops", "bytes", "peak_bytes"}} of one call
    {"op": "quit"} (or the request pipe closed: the gate is gone)
"""

import gc
import importlib.util
import json
import os
import sys
import time

import torch

UPDATE_ALPHA = 0.5
WARMUP_CALLS = 3
BLOCK_S = 0.002  # calls are batched into blocks of about this long, so the clock's overhead stays negligible
# Both sides' workers serve every allocation below 1 GiB from a heap that is never trimmed, so that the comparison
# sees the code, not the allocator's history (ablate/bench/allocator.py).
HEAP_BELOW_BYTES = 1 << 30


def _load_head_module(name: str, path: str):
    """One of the head's files (ablate/gate/counting.py, ablate/bench/allocator.py) as a module of its own,
    whatever `ablate` this process imports."""
    spec = importlib.util.spec_from_file_location(f"ablate_gate_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_call(api, case: dict, tensors: dict):
    """A no-argument callable running one call of the case's variant in its mode through the public API."""
    center_loss, update_centers = api
    features, labels, centers = tensors["features"], tensors["labels"], tensors["centers"]
    variant, convention = case["variant"], case.get("convention", "mean")
    if case["mode"] == "update":
        return lambda: update_centers(centers, features, labels, alpha=UPDATE_ALPHA, rule=case["rule"],
                                      convention=convention, variant=variant)
    features.requires_grad_(True)
    if case["mode"] == "forward":
        return lambda: center_loss(features, labels, centers, variant=variant, convention=convention)
    if case["mode"] == "full":
        def full():
            features.grad = None
            center_loss(features, labels, centers, variant=variant, convention=convention).backward()
        return full
    raise ValueError(f"unknown mode {case['mode']!r}; the gate times forward, full or update")


def _calls_per_block(fn) -> int:
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(BLOCK_S / once))


def _time_round(fn, calls: int, budget_s: float) -> float:
    """The fastest per-call time (ms) of the blocks run within `budget_s`: load from elsewhere only adds time."""
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        now = time.perf_counter()
        best = min(best, (now - start) / calls)
        if now >= deadline:
            return best * 1e3


def _raise_priority() -> None:
    """The highest scheduling priority this user may take: other processes' load then rarely preempts a round
    (CFS weighs nice -20 about 90x nice 0). Without the privilege (not root), the priority stays as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    except OSError:
        pass


def serve(requests, reply, counting) -> None:
    """Answer the gate's requests (see the protocol above) until it says quit or closes the pipe."""
    try:
        import ablate
        from ablate.loss import available_variants, center_loss, update_centers
    except Exception as exc:  # a revision without the public API, or one that does not import at all
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    api = (center_loss, update_centers)
    reply({"ready": True, "ablate_file": ablate.__file__, "variants": list(available_variants("cpu"))})
    cases = {}
    for line in requests:
        request = json.loads(line)
        if request["op"] == "quit":
            return
        if request["op"] == "prepare":
            case = request["case"]
            try:
                fn = make_call(api, case, torch.load(request["inputs"], weights_only=True))
                for _ in range(WARMUP_CALLS):
                    fn()
            except Exception as exc:  # this revision cannot run the case (a new variant, rule or mode)
                reply({"unavailable": f"{type(exc).__name__}: {exc}"})
                continue
            cases[case["name"]] = (fn, _calls_per_block(fn))
            reply({"ok": True})
        elif request["op"] == "time":
            fn, calls = cases[request["case"]]
            gc.disable()
            try:
                reply({"time_ms": _time_round(fn, calls, request["ms"] / 1e3)})
            finally:
                gc.enable()
        elif request["op"] == "count":
            reply({"counts": counting.count_work(cases[request["case"]][0])})


def count_instructions(spec_path: str, result_path: str) -> None:
    """Under callgrind, started with instrumentation off (importing torch instrumented costs minutes): each case of
    the spec ({"cases": [...], "inputs": {name: path}, "calls": N}) warmed up, then N calls with collection on,
    one callgrind dump per case. Writes {name: {"dump": its number} or {"unavailable": reason}} to result_path."""
    import subprocess

    with open(spec_path) as f:
        spec = json.load(f)
    results: dict[str, dict] = {}
    try:
        from ablate.loss import center_loss, update_centers
    except Exception as exc:
        results = {case["name"]: {"unavailable": f"{type(exc).__name__}: {exc}"} for case in spec["cases"]}
        spec["cases"] = []
    calls = {}
    for case in spec["cases"]:
        try:
            calls[case["name"]] = make_call((center_loss, update_centers), case,
                                             torch.load(spec["inputs"][case["name"]], weights_only=True))
        except Exception as exc:
            results[case["name"]] = {"unavailable": f"{type(exc).__name__}: {exc}"}
    if calls:
        subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
    for dump, (name, fn) in enumerate(calls.items(), start=1):
        for _ in range(WARMUP_CALLS):
            fn()
        gc.collect()
        gc.disable()
        torch._C._valgrind_toggle()
        for _ in range(spec["calls"]):
            fn()
        torch._C._valgrind_toggle_and_dump_stats()
        gc.enable()
        results[name] = {"dump": dump}
    with open(result_path, "w") as f:
        json.dump(results, f)


def main() -> None:
    allocator = _load_head_module("allocator", sys.argv[-1])
    allocator.fix_malloc_thresholds(mmap_threshold=HEAP_BELOW_BYTES, trim_threshold=HEAP_BELOW_BYTES)
    _raise_priority()
    torch.set_num_threads(1)
    if sys.argv[1] == "callgrind":
        count_instructions(*sys.argv[2:4])
        return
    request_fd, reply_fd, counting_path = sys.argv[1:4]
    with os.fdopen(int(request_fd), "r") as requests, os.fdopen(int(reply_fd), "w") as replies:
        def reply(obj) -> None:
            replies.write(json.dumps(obj) + "\n")
            replies.flush()
        serve(requests, reply, _load_head_module("counting", counting_path))


if __name__ == "__main__":
    main()
