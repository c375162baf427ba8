"""The target in a child process of its own, so that nothing it does can fool or hang `ablate check`.

    TargetProcess(text, init, device, timeout)   loads TARGET in the child; .call(what, x, y, c) -> Outcome,
                                                 .timing(variants, classes) -> rows, and the training steps of
                                                 --step (.start_steps, .step -> StepObservation) run there;
                                                 .finish() ends it, .close() too on any other path

A call that does not return within `timeout` seconds, a child that ends (sys.exit at import or in the loss, a crash
in native code), and a call after which the target has processes running besides its own (ablate.check.contain:
a `sleep` it started, in its session or out of it, a daemon that double-forked) raise TargetAborted naming the call
and those processes; every process of the target is then killed. Requests and replies travel as plain pickles over a
pipe (tensors by value), so the target never shares memory with the checks; its stdout and stderr come back through
pipes of their own (ablate.check.relay), never to the caller's terminal or to whatever captures the check's output.
"""

import multiprocessing
import os
import pickle
import sys
import time

import torch

from ablate.check.contain import Containment, describe
from ablate.check.relay import Relay
from ablate.check.target import TargetError, load_target, run_target, target_note
from ablate.escape import terminal_line
from ablate.signals import signals_deferred

DEFAULT_TIMEOUT_S = 60.0  # per call: a check's call takes well under a second; a timing point a few seconds
TIMEOUT_RANGE_S = (1.0, 86400.0)  # --timeout: a second (the target's import included) to a day
START_TIMEOUT_S = 300.0  # for the child to import torch and the checks, before TARGET is touched
STRAY_GRACE_S = 0.5  # a process the target started may take this long to end after the call returns
RELAY_END_S = 2.0  # for the relays to read what the ended processes wrote
NOTE_CHARS = 500  # of a harness error's message


class TargetAborted(RuntimeError):
    """The target hung, ended its process or left processes running (or the harness itself failed): the check
    fails with this reason."""


def _serve(conn, stdout, stderr, text: str, init: dict, device: str) -> None:
    """The child: a session of its own, stdout and stderr into the relays' pipes; once the parent has seen it
    ("go"), load TARGET, then answer requests (what, kind, args) until the pipe closes."""
    os.setsid()  # the target's processes are this session's unless they leave it (ablate.check.contain)
    # torch.compile's pool of compile workers would outlive every call and be taken for processes the target left;
    # inductor compiles in this process instead (read when inductor is first imported, after this)
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    for stream, fd in ((stdout, 1), (stderr, 2)):
        os.dup2(stream.fileno(), fd)
        stream.close()
    try:
        conn.send_bytes(pickle.dumps(("ready", None)))
        conn.recv_bytes()  # "go": the parent has noted its own children
        _answer(conn, text, init, device)
    except (EOFError, OSError):  # the parent closed the pipe (it stopped the check): nothing to say to it
        pass
    except SystemExit:  # the target's sys.exit: its status is the process's, reported by the parent
        raise
    except BaseException as exc:  # a KeyboardInterrupt of the target's, say: one line, not multiprocessing's traceback
        print(f"the target's process ended on {target_note(exc)}", file=sys.stderr, flush=True)
        os._exit(1)


def _reply(conn, reply) -> None:
    sys.stdout.flush()  # the target's prints reach the relay before the verdict they belong to
    sys.stderr.flush()
    conn.send_bytes(pickle.dumps(reply))


def _answer(conn, text: str, init: dict, device: str) -> None:
    try:
        target = load_target(text, init)
    except TargetError as exc:
        _reply(conn, ("usage", str(exc)))
        return
    target.device = torch.device(device)
    _reply(conn, ("ok", target.kind))
    steps = None  # the module and step function of --step, kept from one step to the next
    while True:
        kind, args = pickle.loads(conn.recv_bytes())
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
        except Exception as exc:  # the harness's own failure: shown, not blamed on the target
            from ablate.failures import error_note

            reply = ("error", error_note(exc))
        _reply(conn, reply)


class TargetProcess:
    """TARGET loaded in a child process; every call goes through it (see the module docstring)."""

    def __init__(self, text: str, init: dict, device: torch.device, timeout: float = DEFAULT_TIMEOUT_S):
        self.name, self.device, self.timeout = text, torch.device(device), timeout
        self._shown_name = terminal_line(text, 200)
        context = multiprocessing.get_context("forkserver")  # as the ranks and grid workers: a fork of a clean server
        self._conn, child_conn = context.Pipe()
        outputs = [context.Pipe(duplex=False) for _ in ("stdout", "stderr")]  # (read end, write end) each
        self._process = context.Process(target=_serve, args=(child_conn, *(w for _, w in outputs), text, init,
                                                             str(self.device)), daemon=True)
        self._readers = [r for r, _ in outputs]
        self._relays: list = []
        self._closed = False
        self._contained = Containment()  # from here on, close() restores what it changed
        try:
            try:
                with signals_deferred():  # an interrupt inside the start would leave a child nobody ends
                    self._process.start()
            finally:
                for connection in (child_conn, *(w for _, w in outputs)):  # the child holds its own copies
                    connection.close()
            self._relays = [Relay(f"target {label}", r.fileno()) for label, r in zip(("stdout", "stderr"),
                                                                                     self._readers)]
            self._receive("starting the check's process", START_TIMEOUT_S)
            self._contained.watch(self._process.pid)
            try:
                self._conn.send_bytes(pickle.dumps("go"))
            except OSError:
                pass  # the child is gone: _receive says how
            self.kind = self._receive(f"importing {self._shown_name}", timeout)
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
        self._request(f"loading --step {terminal_line(spec, 200)} and building the module", "start_steps",
                      (spec, centers_attr, centers))

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
                killed = self.close()
                raise TargetAborted(f"{self._shown_name} hung in {what}: no return within {timeout:g} s (--timeout); "
                                    f"the check was stopped{_also(killed)}")
        try:
            status, value = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            killed = self.close()
            raise TargetAborted(f"{self._shown_name} ended its process (exit status {code}) in {what}: a center loss "
                                f"must return, not exit{_also(killed)}") from None
        self._check_strays(f"after {what}")
        if status == "usage":
            self.close()
            raise TargetError(value)
        if status == "error":
            self.close()
            raise TargetAborted(f"the check itself failed in {what}: {terminal_line(value, NOTE_CHARS)} (a fault of "
                                "ablate check, not of the target)")
        return value

    def _check_strays(self, when: str) -> None:
        """Fail the check if the target has processes running besides its own (after STRAY_GRACE_S for them to
        end): they are named and killed, with every other process of the target."""
        deadline = time.monotonic() + STRAY_GRACE_S
        while strays := self._contained.strays():
            if time.monotonic() > deadline:
                killed = self.close() or strays  # those seen, should they have ended just before the kill
                raise TargetAborted(f"{self._shown_name} left processes running {when}: {describe(killed)}; they were "
                                    "killed (a center loss must not start processes that outlive its call)")
            time.sleep(0.05)

    def finish(self) -> None:
        """End the child at the end of the check: TargetAborted if the target left processes running (a thread of
        its that started one after its last call, say), else as close()."""
        if not self._closed:
            self._check_strays("at the end of the check")
        self.close()

    def close(self) -> list:
        """End the child and every process of the target (killed, not asked), then the relays; returns the
        processes killed besides the child. Safe to call again."""
        if self._closed:
            return []
        self._closed = True
        self._conn.close()
        killed = self._contained.end()
        if self._process.pid is not None:  # started
            if self._process.is_alive():  # not yet watched: ended here
                self._process.kill()
            self._process.join(5)
        self._contained.close()
        for relay in self._relays:
            relay.stop(RELAY_END_S)
        for reader in self._readers:
            reader.close()
        return killed


def _also(killed) -> str:
    return f"; its other processes were killed: {describe(killed)}" if killed else ""
