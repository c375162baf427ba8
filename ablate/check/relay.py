"""TARGET's stdout and stderr relayed to the check's stderr: each line marked as the target's, what a terminal would
act on shown escaped (ablate.escape.terminal_text), at most RELAY_CAP_BYTES of each stream, then a count of the rest.

    Relay(label, fd)     a thread reading fd (the read end of a pipe the target writes into) as it is written
    .stop(timeout)       read what is left (for at most timeout s), then say how many bytes were not shown
The pipe is read however much the target writes, so that a target printing megabytes never blocks on a full pipe.
"""

import codecs
import os
import select
import threading
import time

import click

from ablate.escape import terminal_text

RELAY_CAP_BYTES = 16 * 1024  # per stream and check: a few hundred lines of a target's prints
READ_BYTES = 1 << 16
POLL_S = 0.05


class Relay:
    """One stream of the target's, relayed from `fd` to this process's stderr as `label| line`."""

    def __init__(self, label: str, fd: int):
        self.label, self._fd = label, fd
        self.shown = self.dropped = 0  # bytes of the stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_open = False  # the last line shown has no newline yet
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._read, name=f"ablate check: {label}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """Until the last writer closes the pipe; after stop(), until nothing is left to read or its deadline."""
        while True:
            ready, _, _ = select.select([self._fd], [], [], POLL_S)
            if not ready:
                if self._deadline < float("inf"):  # stopped, and nothing more was written
                    return
                continue
            try:
                chunk = os.read(self._fd, READ_BYTES)
            except OSError:
                return
            if not chunk:
                return
            room = max(RELAY_CAP_BYTES - self.shown, 0)
            self.shown += min(room, len(chunk))
            self.dropped += max(len(chunk) - room, 0)
            if room:
                self._show(self._decoder.decode(chunk[:room]))
            if time.monotonic() > self._deadline:
                return

    def _show(self, text: str) -> None:
        pieces, out = text.split("\n"), []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if last and not piece:
                break
            if not self._line_open:
                out.append(f"{self.label}| ")
            out.append(terminal_text(piece))
            self._line_open = last
            if not last:
                out.append("\n")
        if out:
            click.echo("".join(out), err=True, nl=False)

    def stop(self, timeout: float) -> None:
        """Read what is still in the pipe (the writers have ended, or have `timeout` s), end the line, count what
        was not shown; the caller closes the fd."""
        self._deadline = time.monotonic() + timeout
        self._thread.join(timeout + 1)
        if self._thread.is_alive():  # a read under way: its count is not final
            return
        self._show(self._decoder.decode(b"", final=True))
        if self._line_open:
            click.echo("", err=True)
            self._line_open = False
        if self.dropped:
            click.echo(f"{self.label}: {self.dropped:,} more bytes not shown (the first {self.shown:,} were)",
                       err=True)
