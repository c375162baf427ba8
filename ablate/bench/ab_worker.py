"""One side of the A/B gate: a process that times gate cases with whichever `ablate` its tree holds.

The gate runs this file's source with `python -c` in a checked-out tree (cwd and PYTHONPATH = the
tree), so `import ablate` resolves to that revision's code while this timing code is the same on both
sides. It therefore imports nothing from ablate but the public API that every revision keeps:
`ablate.loss.center_loss`, `update_centers` and `available_variants`.

Protocol: one JSON object per line on stdin, one reply per line on stdout.
    (on start)                               -> {"ready": true, "ablate_file", "variants"} or {"error"}
    {"op": "prepare", "case": {...}, "inputs": path to a torch.save'd dict of features, labels, centers}
                                             -> {"ok": true} or {"unavailable": reason}
    {"op": "time", "case": name, "ms": budget} -> {"time_ms": per-call time}
    {"op": "quit"}
"""

import gc
import json
import os
import sys
import time

import torch

UPDATE_ALPHA = 0.5
WARMUP_CALLS = 3
BLOCK_S = 0.002  # calls are batched into blocks of about this long, so the clock's overhead stays negligible


def _reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _make_call(api, case: dict, tensors: dict):
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


def main() -> None:
    _raise_priority()
    torch.set_num_threads(1)
    try:
        import ablate
        from ablate.loss import available_variants, center_loss, update_centers
    except Exception as exc:  # a revision without the public API, or one that does not import at all
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    api = (center_loss, update_centers)
    _reply({"ready": True, "ablate_file": ablate.__file__, "variants": list(available_variants("cpu"))})
    cases = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            return
        if request["op"] == "prepare":
            case = request["case"]
            try:
                fn = _make_call(api, case, torch.load(request["inputs"], weights_only=True))
                for _ in range(WARMUP_CALLS):
                    fn()
            except Exception as exc:  # this revision cannot run the case (a new variant, rule or mode)
                _reply({"unavailable": f"{type(exc).__name__}: {exc}"})
                continue
            cases[case["name"]] = (fn, _calls_per_block(fn))
            _reply({"ok": True})
        elif request["op"] == "time":
            fn, calls = cases[request["case"]]
            gc.disable()
            try:
                _reply({"time_ms": _time_round(fn, calls, request["ms"] / 1e3)})
            finally:
                gc.enable()


if __name__ == "__main__":
    main()
