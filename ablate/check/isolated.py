"""The target in a child process of its own, so that nothing it does can fool or hang `ablate check`.

    TargetProcess(text, init, device, timeout)   loads TARGET in the child; .call(what, x, y, c) -> Outcome,
                                                 .timing(variants, classes) -> rows, and the training steps of
                                                 --step (.start_steps, .step -> StepObservation) run there

A call that does not return within `timeout` seconds, and a child that ends (sys.exit at import or in the loss, a
crash in native code), raise TargetAborted naming the call; the child is then ended. Requests and replies travel
as plain pickles over a pipe (tensors by value), so the target never shares memory with the checks.
"""

import multiprocessing
import pickle
import traceback

import torch

from ablate.check.target import TargetError, load_target, run_target

DEFAULT_TIMEOUT_S = 60.0  # per call: a check's call takes well under a second; a timing point a few seconds
START_TIMEOUT_S = 300.0  # for the child to import torch and the checks, before TARGET is touched


class TargetAborted(RuntimeError):
    """The target hung or ended its process during a call: the check fails with this reason."""


def _serve(conn, text: str, init: dict, device: str) -> None:
    """The child: load TARGET, then answer requests (what, kind, args) until the pipe closes."""
    conn.send_bytes(pickle.dumps(("ready", None)))
    try:
        target = load_target(text, init)
    except TargetError as exc:
        conn.send_bytes(pickle.dumps(("usage", str(exc))))
        return
    target.device = torch.device(device)
    conn.send_bytes(pickle.dumps(("ok", target.kind)))
    steps = None  # the module and step function of --step, kept from one step to the next
    while True:
        try:
            kind, args = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        try:
            if kind == "call":
                reply = ("ok", run_target(target, *args))
            elif kind == "start_steps":
                from ablate.check.step import LocalSteps

                steps = LocalSteps(target)
                reply = ("ok", steps.start_steps(*args))
            elif kind == "step":
                reply = ("ok", steps.step(*args))
            else:
                from ablate.check.suite import timing_rows

                reply = ("ok", timing_rows(target, *args))
        except TargetError as exc:
            reply = ("usage", str(exc))
        except Exception:  # the harness's own failure: shown, not blamed on the target
            reply = ("error", traceback.format_exc(limit=-3))
        conn.send_bytes(pickle.dumps(reply))


class TargetProcess:
    """TARGET loaded in a child process; every call goes through it (see the module docstring)."""

    def __init__(self, text: str, init: dict, device: torch.device, timeout: float = DEFAULT_TIMEOUT_S):
        self.name, self.device, self.timeout = text, torch.device(device), timeout
        context = multiprocessing.get_context("forkserver")  # as the ranks and grid workers: a fork of a clean server
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, text, init, str(self.device)), daemon=True)
        self._process.start()
        child_conn.close()
        try:
            self._receive("starting the check's process", START_TIMEOUT_S)
            self.kind = self._receive(f"importing {text}", timeout)
        except BaseException:
            self.close()
            raise

    def call(self, what: str, features, labels, centers):
        """run_target in the child: the Outcome of one call, `what` naming it should it hang or end the process."""
        return self._request(what, "call", (features, labels, centers))

    def timing(self, variants, classes: int) -> list:
        """suite.timing_rows in the child, for one class count."""
        return self._request(f"timing at C={classes}", "timing", (variants, self.device, (classes,)))

    def start_steps(self, spec: str, centers_attr, centers) -> None:
        """ablate.check.step.LocalSteps.start_steps in the child: load STEP, build the module, set its centers."""
        self._request(f"loading --step {spec} and building the module", "start_steps", (spec, centers_attr, centers))

    def step(self, what: str, features, labels, lam: float):
        """One training step in the child: its StepObservation, `what` naming it should it hang or end the process."""
        return self._request(what, "step", (what, features, labels, lam))

    def _request(self, what: str, kind: str, args):
        try:
            self._conn.send_bytes(pickle.dumps((kind, args)))
        except OSError:
            pass  # the child is gone: _receive says how
        return self._receive(what, self.timeout)

    def _receive(self, what: str, timeout: float):
        if not self._conn.poll(timeout):
            if self._process.is_alive():
                self.close()
                raise TargetAborted(f"{self.name} hung in {what}: no return within {timeout:g} s (--timeout); the "
                                    "check was stopped")
        try:
            status, value = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            self.close()
            raise TargetAborted(f"{self.name} ended its process (exit status {code}) in {what}: a center loss must "
                                "return, not exit") from None
        if status == "usage":
            self.close()
            raise TargetError(value)
        if status == "error":
            self.close()
            raise RuntimeError(f"the check failed in {what}: {value}")
        return value

    def close(self) -> None:
        """Close the pipe, which ends the child's loop; kill it if it has not ended within a second."""
        self._conn.close()
        self._process.join(1)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
