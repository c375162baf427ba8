"""How a hostile target starts a process that outlives its call: the members of the class `ablate check` must
contain. Imports no torch, so that a bare Python process can play the target's part in the containment's own tests.

    start_process(how, command, tag, delay)   starts COMMANDS[command] the way SPAWNS[how] says, now (delay 0) or
                                              from a daemon thread `delay` s later; returns at once, with an Event
                                              set once the process has been started
    tagged(tag)                               pids of the running processes started so (TAG_VARIABLE=tag in their
                                              environment)
"""

import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

TAG_VARIABLE = "ABLATE_HOSTILE_TAG"
_IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
_FORKS_MORE = "import subprocess, time\nwhile True:\n    subprocess.Popen(['sleep', '3600'])\n    time.sleep(0.05)"
COMMANDS = {
    "sleep": ["sleep", "3600"],
    "ignores_term": [sys.executable, "-c", _IGNORES_TERM],  # ended by SIGKILL only
    "forks_more": [sys.executable, "-c", _FORKS_MORE],  # a new `sleep 3600` every 50 ms
}
SPAWNS = {
    "same_session": "a child in the target's session and group",
    "new_session": "a child with start_new_session=True (a session and group of its own)",
    "own_group": "a child in a process group of its own (process_group=0), same session",
    "shell_background": "`sh -c 'CMD &'`: the shell ends, CMD is orphaned in the session",
    "double_fork": "fork, fork again, the middle one exits: an orphan in the session",
    "daemon": "fork, setsid, fork, the middle one exits: an orphan out of the session (a classic daemon)",
}


def _environment(tag: str) -> dict:
    return {**os.environ, TAG_VARIABLE: tag}


def _fork_exec(command: list, tag: str, new_session: bool) -> None:
    """Fork twice; the grandchild runs `command`, the middle process exits, the caller reaps it."""
    env = _environment(tag)  # built before the fork: the forked processes only call into the OS
    middle = os.fork()
    if middle == 0:
        try:
            if new_session:
                os.setsid()
            if os.fork() == 0:
                os.execvpe(command[0], command, env)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)


def _start_now(how: str, command: list, tag: str) -> None:
    env = _environment(tag)
    if how == "same_session":
        subprocess.Popen(command, env=env)
    elif how == "new_session":
        subprocess.Popen(command, env=env, start_new_session=True)
    elif how == "own_group":
        subprocess.Popen(command, env=env, process_group=0)
    elif how == "shell_background":
        subprocess.run(["sh", "-c", shlex.join(command) + " &"], env=env, check=True)
    elif how in ("double_fork", "daemon"):
        _fork_exec(command, tag, new_session=how == "daemon")
    else:
        raise ValueError(f"how must be one of {', '.join(SPAWNS)}, got {how!r}")


def start_process(how: str, command: str, tag: str, delay: float = 0.0) -> threading.Event:
    """COMMANDS[command] started as SPAWNS[how] says, now or from a daemon thread after `delay` seconds; the Event
    returned is set once it has been started."""
    started = threading.Event()
    if delay <= 0:
        _start_now(how, COMMANDS[command], tag)
        started.set()
        return started

    def later():
        time.sleep(delay)
        _start_now(how, COMMANDS[command], tag)
        started.set()

    threading.Thread(target=later, daemon=True).start()
    return started


def tagged(tag: str) -> list:
    """Pids of the running processes whose environment holds TAG_VARIABLE=tag (a zombie's environment reads empty)."""
    marker = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
