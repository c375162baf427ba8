"""Targets for `ablate check` that try to fool or hang it: each must end in a failed check, never "agrees"."""

import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn


def exits_in_the_loss(features, labels, centers):
    sys.exit(0)


def never_returns(features, labels, centers):
    while True:
        time.sleep(1)


def zeroes_the_labels(features, labels, centers):
    """Computes against class 0 after zeroing the labels in place: right for the mutated inputs only."""
    labels.zero_()
    return ((features - centers[labels]) ** 2).sum() / features.shape[0]


def returns_a_float(features, labels, centers):
    """A Python float, whatever the input: the harness refuses it, which is no credit for rejecting a NaN."""
    return 1.0


def sums_over_b(features, labels, centers):
    """sum_i ||x_i - c_{y_i}||^2 / B, correct: the control."""
    return ((features - centers[labels]) ** 2).sum() / features.shape[0]


def killed_by_sigkill(features, labels, centers):
    """A crash the process cannot report: SIGKILL to itself in the first call."""
    os.kill(os.getpid(), signal.SIGKILL)


def closes_its_pipes(features, labels, centers):
    """Closes every descriptor but stdin, stdout and stderr, the pipe to the check among them, then returns."""
    os.closerange(3, 4096)
    return sums_over_b(features, labels, centers)


def raises_keyboard_interrupt(features, labels, centers):
    """A BaseException that no `except Exception` catches, from inside the loss."""
    raise KeyboardInterrupt("from the loss")


LOUD_BYTES = 5_000_000  # per call, on stdout
ANSI_REPEATS = 200_000  # per call, on stderr: colour codes, a screen clear and a right-to-left override each


def prints_megabytes(features, labels, centers):
    """sum/B, correct, printing LOUD_BYTES per call on stdout and ANSI-laden, bidi-laden text on stderr."""
    sys.stdout.write("x" * (LOUD_BYTES - 1) + "\n")
    sys.stderr.write("\x1b[31m\x1b[2J\u202eRED\r\n" * ANSI_REPEATS)
    return sums_over_b(features, labels, centers)


def raises_a_long_ansi_message(features, labels, centers):
    """Refuses every input with a 1 MB message of escape sequences: its note in the table is one bounded line."""
    raise ValueError("\x1b[2J\u202e" * 500_000)


_started = None  # a module is built per call: a process is started once per check (then: its threading.Event)
PROCESS_START_WAIT_S = 30.0


class LeavesAProcess(nn.Module):
    """sum/B, correct, but its first forward starts COMMANDS[command] as SPAWNS[how] says
    (tests/support/hostile_spawn.py), in the call (delay 0) or from a daemon thread `delay` s later; with hangs=True,
    that forward then never returns.
    Every later forward waits until the process has started: a check that runs faster than `delay` would otherwise
    end before the thread starts it. tag goes into the started process's environment, for the tests to find it."""

    def __init__(self, num_classes=10, feat_dim=2, how="same_session", command="sleep", delay=0.0, tag="",
                 hangs=False):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.how, self.command, self.delay, self.tag, self.hangs = how, command, delay, tag, hangs

    def forward(self, features, labels):
        global _started
        if _started is None:
            # A check imports this file by its path: its folder is not on sys.path.
            sys.path.insert(0, str(Path(__file__).parent))
            from hostile_spawn import start_process

            _started = start_process(self.how, self.command, self.tag, self.delay)
            while self.hangs:
                time.sleep(1)
        else:
            _started.wait(PROCESS_START_WAIT_S)
        return ((features - self.centers[labels]) ** 2).sum() / features.shape[0]
