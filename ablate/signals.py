"""Signals: SIGTERM and SIGHUP end a command as SIGINT does, and no interrupt lands while a process is started.

    termination_raises(error)       a block in which SIGTERM/SIGHUP raise error(signal name), cleanup then shielded
                                    (the command line holds one raising Terminated around every command)
    Terminated                      the KeyboardInterrupt a SIGTERM or SIGHUP raises, holding the signal
    interrupt_status(exc)           the exit status of a process an interrupt ended: 128 + the signal's number
    signals_deferred()              a block during which SIGINT, SIGTERM and SIGHUP wait (then arrive)
    writes_fail_instead_of_killing()   a file-size limit (ulimit -f) fails a write (EFBIG) instead of killing
"""

import signal
import threading
from contextlib import contextmanager
from typing import Callable

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what a CI timeout, systemd or a closed terminal sends
INTERRUPTS = {signal.SIGINT, *TERMINATION_SIGNALS}


# Nested termination_raises blocks (the command line's, and one of the gate's inside it): one termination per
# outermost block, so that an outer block's handler, back once an inner block ends, cannot cut short the cleanup the
# first signal started.
_blocks = {"depth": 0, "terminated": False}


@contextmanager
def termination_raises(error: Callable[[str], BaseException]):
    """Inside the block, SIGTERM and SIGHUP raise error(signal name) in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so that every cleanup on that path runs (ranks and their rendezvous folder, grid workers and
    their cell folders, the gate's worktree); a second one during that cleanup, in this block or one around it, is
    ignored. The previous handlers come back when the block ends. Outside the main thread (where Python cannot
    handle signals) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        for sig in TERMINATION_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if _blocks["terminated"]:
            return
        _blocks["terminated"] = True
        raise error(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in TERMINATION_SIGNALS}
    _blocks["depth"] += 1
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _blocks["depth"] -= 1
        if _blocks["depth"] == 0:
            _blocks["terminated"] = False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as Ctrl-C raises KeyboardInterrupt, so that every cleanup for Ctrl-C runs for it
    too; `signum` is the signal, which the process's exit status reports (interrupt_status)."""

    def __init__(self, name: str, message: str | None = None):
        super().__init__(message or f"ended by {name}")
        self.signum = signal.Signals[name]


def interrupt_status(interrupt: BaseException) -> int:
    """The exit status of a process ended by `interrupt`: 128 + its signal's number, as a shell reports a process a
    signal killed (143 for SIGTERM, 129 for SIGHUP; 130 for Ctrl-C, a plain KeyboardInterrupt)."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


def writes_fail_instead_of_killing() -> None:
    """Ignore SIGXFSZ, so that a write beyond the file-size limit (`ulimit -f`, RLIMIT_FSIZE) fails with EFBIG, an
    error the writer names with its file, instead of killing the process (the signal's default) mid-write. Child
    processes inherit it."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@contextmanager
def signals_deferred():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends. Around starting processes: an interrupt inside the
    start would leave a process running that the caller has not recorded yet, so cannot end."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
