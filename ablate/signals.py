"""Signals: SIGTERM and SIGHUP end a command as SIGINT does, and no interrupt lands while a process is started.

    termination_raises(error)       a block in which SIGTERM/SIGHUP raise error(signal name), cleanup then shielded
    interrupt_on_termination(ctx)   the same for the length of a Click command, raising KeyboardInterrupt
    signals_deferred()              a block during which SIGINT, SIGTERM and SIGHUP wait (then arrive)
"""

import signal
import threading
from contextlib import contextmanager
from typing import Callable

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what a CI timeout, systemd or a closed terminal sends
INTERRUPTS = {signal.SIGINT, *TERMINATION_SIGNALS}


@contextmanager
def termination_raises(error: Callable[[str], BaseException]):
    """Inside the block, SIGTERM and SIGHUP raise error(signal name) in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so that every cleanup on that path runs (ranks and their rendezvous folder, grid workers and
    their cell folders, the gate's worktree); a second one during that cleanup is ignored. The previous handlers
    come back when the block ends. Outside the main thread (where Python cannot handle signals) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        for sig in TERMINATION_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise error(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt_on_termination(ctx) -> None:
    """Make SIGTERM and SIGHUP end the Click command `ctx` as SIGINT does (KeyboardInterrupt)."""
    ctx.with_resource(termination_raises(lambda name: KeyboardInterrupt(f"ended by {name}")))


@contextmanager
def signals_deferred():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends. Around starting processes: an interrupt inside the
    start would leave a process running that the caller has not recorded yet, so cannot end."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
