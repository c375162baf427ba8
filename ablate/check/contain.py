"""What TARGET starts stays inside `ablate check`: every process it leaves is found, named and killed.

The target runs in a child that makes itself a session leader first (ablate.check.isolated). The target's processes
are then the leader's session, the leader's descendants (a child that made a session of its own is still one), and
the orphans this process adopts while it is a child subreaper (Linux's PR_SET_CHILD_SUBREAPER: a daemon that
double-forked out of the session re-parents here, not to init), with their descendants.

    Containment()             this process made a child subreaper until close()
    .watch(leader)            from now on, a new child of this process is an adopted orphan of the target
    .strays()                 the target's running processes but the leader: [Stray]
    .end()                    SIGKILL to the leader and every stray, round after round until none is left; the strays
                              killed
    .close()                  the subreaper setting as it was, adopted orphans reaped
Where there is no /proc or prctl (not Linux) nothing is found and only the leader is ended.
"""

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import NamedTuple, Optional

from ablate.escape import terminal_line

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37  # <linux/prctl.h>
KILL_ROUNDS = 200  # a stray that forks between one listing and the kill is caught by the next round
ROUND_PAUSE_S = 0.005
COMMAND_SHOWN = 80  # characters of a stray's command line in a message
STRAYS_NAMED = 5  # strays named in a message; the rest counted


class Stray(NamedTuple):
    """A running process of the target's: its pid and command line (as /proc shows it, escaped and cut)."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def describe(strays) -> str:
    """'pid 12 (sleep 3600), pid 13 (...)': the first STRAYS_NAMED, then how many more."""
    named = ", ".join(map(str, strays[:STRAYS_NAMED]))
    return named + (f" and {len(strays) - STRAYS_NAMED} more" if len(strays) > STRAYS_NAMED else "")


class _Process(NamedTuple):
    ppid: int
    session: int
    running: bool  # not a zombie


def _process_table() -> dict:
    """pid -> _Process for every process /proc lists (empty without /proc)."""
    table = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return table
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_bytes()
                fields = stat.rsplit(b") ", 1)[1].split()  # after "pid (comm) ": state ppid pgrp session ...
                table[int(entry.name)] = _Process(int(fields[1]), int(fields[3]), fields[0] not in (b"Z", b"X"))
            except (OSError, IndexError, ValueError):  # ended since the listing
                continue
    return table


def _command(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
    except OSError:
        return "ended"
    return terminal_line(text.decode("utf-8", "replace"), COMMAND_SHOWN) or "no command line"


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "prctl") else None
    except OSError:
        return None


class Containment:
    """The target's processes, seen from the checking process (see the module docstring)."""

    def __init__(self):
        self._libc = _libc()
        self._was_subreaper = self._subreaper()
        if self._libc is not None and not self._was_subreaper:
            self._libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.leader: Optional[int] = None
        self._known: set = set()  # this process's own children (the forkserver, the resource tracker)

    def _subreaper(self) -> bool:
        if self._libc is None:
            return False
        flag = ctypes.c_int(0)
        return self._libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and bool(flag.value)

    def watch(self, leader: int) -> None:
        """`leader` is the target's process; this process's children now are its own, any later one is adopted.
        Call it before the target's code runs."""
        self.leader = leader
        me = os.getpid()
        self._known = {pid for pid, p in _process_table().items() if p.ppid == me} - {leader}

    def _members(self, table: dict) -> set:
        """The pids of the target's processes in `table`, zombies and the leader included."""
        if self.leader is None:
            return set()
        me = os.getpid()
        roots = {self.leader} | {pid for pid, p in table.items() if p.ppid == me and pid not in self._known}
        children: dict = {}
        for pid, p in table.items():
            children.setdefault(p.ppid, []).append(pid)
        found, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, ()))
        found |= {pid for pid, p in table.items() if p.session == self.leader}
        return (found & table.keys()) - {me} - self._known

    def strays(self) -> list:
        """The target's running processes other than the leader, by pid."""
        table = _process_table()
        return [Stray(pid, _command(pid)) for pid in sorted(self._members(table))
                if pid != self.leader and table[pid].running]

    def end(self) -> list:
        """SIGKILL every running process of the target, the leader included, until none is left (or KILL_ROUNDS
        pass); adopted zombies reaped. Returns the strays killed (the leader is not one)."""
        killed: dict = {}
        quiet = 0  # rounds in a row that found nothing running
        for _ in range(KILL_ROUNDS):
            table = _process_table()
            running = [pid for pid in self._members(table) if table[pid].running]
            if not running:
                # Twice: a listing is not atomic, and one read while a killed parent is reaped can show its child's
                # parent as a pid that is gone; the next shows the child adopted here.
                quiet += 1
                if quiet == 2:
                    break
                time.sleep(ROUND_PAUSE_S)
                continue
            quiet = 0
            for pid in running:
                if pid != self.leader and pid not in killed:
                    killed[pid] = Stray(pid, _command(pid))
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self._reap()
            time.sleep(ROUND_PAUSE_S)
        self._reap()
        return sorted(killed.values())

    def _reap(self) -> None:
        """Collect the exit status of every adopted orphan that has ended (this process's zombies)."""
        if self.leader is None:  # before watch() no child is known to be adopted
            return
        me = os.getpid()
        for pid, p in _process_table().items():
            if p.ppid == me and pid not in self._known and pid != self.leader and not p.running:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def close(self) -> None:
        """Stop adopting orphans (the setting this process had before), then reap the adopted ones that ended."""
        if self._libc is not None and not self._was_subreaper:
            self._libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        self._reap()
