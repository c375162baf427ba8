"""Signals: SIGTERM and SIGHUP end a command as SIGINT does, and no interrupt lands while a process is started.

    interrupt_on_termination(ctx)   for the length of a Click command, SIGTERM/SIGHUP raise KeyboardInterrupt
    signals_deferred()              a block during which SIGINT, SIGTERM and SIGHUP wait (then arrive)
"""

import signal
import threading
from contextlib import contextmanager

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what a CI timeout, systemd or a closed terminal sends
INTERRUPTS = {signal.SIGINT, *TERMINATION_SIGNALS}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"ended by {signal.Signals(signum).name}")


def interrupt_on_termination(ctx) -> None:
    """Make SIGTERM and SIGHUP end the command as SIGINT does (KeyboardInterrupt): every run that starts
    processes or temp state cleans them up on that path (ranks and their rendezvous folder, grid workers and
    their cell folders, the gate's worktree). The previous handlers come back when the command ends."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in TERMINATION_SIGNALS}
    ctx.call_on_close(lambda: [signal.signal(sig, handler) for sig, handler in previous.items()])


@contextmanager
def signals_deferred():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends. Around starting processes: an interrupt inside the
    start would leave a process running that the caller has not recorded yet, so cannot end."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
