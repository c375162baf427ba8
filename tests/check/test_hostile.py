"""`ablate check` cannot be fooled or hung by its target: it exits, hangs, mutates its inputs (hostile inputs, round
two), leaves processes running, floods the terminal, is signalled, is given timeouts that cannot run (round three).
Each class is tried over generated members; a member that needs a real `ablate check` process is marked slow unless
it is the one the fast lane keeps for its class."""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import uuid

import pytest
from click.testing import CliRunner

from ablate.check.cli import Seconds
from ablate.check.contain import Containment
from ablate.check.isolated import TIMEOUT_RANGE_S
from ablate.check.relay import RELAY_CAP_BYTES, Relay
from ablate.cli import main
from ablate.escape import terminal_line, terminal_text
from tests.support import ROOT, SUPPORT
from tests.support.hostile_spawn import COMMANDS, SPAWNS, tagged
from tests.test_signals import alive

HOSTILE = SUPPORT / "hostile_check_targets.py"
LEAVER = f"{HOSTILE}:LeavesAProcess"
WAIT_S = 30  # for a process to appear or a command to end; a test failing on it failed, it is not a timing


def check(*args):
    result = CliRunner().invoke(main, ["check", *args, "--no-timing"])
    return result.exit_code, result.output


def one_failure_line(output: str) -> str:
    """The check's one FAILED line; no traceback anywhere in the output."""
    assert "Traceback" not in output and "Error:" not in output, output
    lines = [line for line in output.splitlines() if "check FAILED" in line]
    assert len(lines) == 1 and len(lines[0]) < 2000, output
    return lines[0]


@pytest.mark.parametrize("target, options, reason", [
    (f"{HOSTILE}:exits_in_the_loss", (), "ended its process (exit status 0)"),
    (f"{SUPPORT / 'hostile_exit_at_import.py'}:loss", (), "ended its process (exit status 0) in importing"),
    pytest.param(f"{HOSTILE}:killed_by_sigkill", (), "ended its process (exit status -9)", marks=pytest.mark.slow),
    pytest.param(f"{HOSTILE}:closes_its_pipes", (), "ended its process (exit status 0)", marks=pytest.mark.slow),
    pytest.param(f"{HOSTILE}:raises_keyboard_interrupt", (), "ended its process (exit status 1)",
                 marks=pytest.mark.slow),
    # what --timeout 1e-9 did: the child answers after the check gave up on it (a BrokenPipeError traceback then)
    pytest.param(f"{SUPPORT / 'hostile_slow_import.py'}:loss", ("--timeout", "1"), "hung in importing",
                 marks=pytest.mark.slow),
])
def test_a_target_that_exits_or_breaks_the_pipe_fails_the_check_in_one_line(target, options, reason):
    code, output = check(target, *options)
    assert code == 1 and reason in one_failure_line(output) and "agrees" not in output, output


def test_a_target_that_never_returns_is_stopped_and_the_call_named():
    code, output = check(f"{HOSTILE}:never_returns", "--timeout", "2")
    assert code == 1 and "hung in the convention batch B=8, C=5" in output and "2 s" in output, output


def test_a_target_that_mutates_its_inputs_does_not_agree(tmp_path):
    path = tmp_path / "v.json"
    code, output = check(f"{HOSTILE}:zeroes_the_labels", "--json", str(path))
    verdicts = json.loads(path.read_text())
    assert code == 1 and not verdicts["agrees"], output
    assert "changed its input labels in place" in verdicts["findings"][0]["detail"]


def test_the_control_target_agrees():
    code, output = check(f"{HOSTILE}:sums_over_b")
    assert code == 0 and "agrees with the reference under sum/B" in output, output


def test_a_harness_rejection_is_not_credited_as_rejecting_bad_input(tmp_path):
    path = tmp_path / "v.json"
    check(f"{HOSTILE}:returns_a_float", "--json", str(path))
    bad_input = {f["check"]: f for f in json.loads(path.read_text())["findings"] if f["section"] == "bad input"}
    assert bad_input["NaN feature"]["passed"] is False and bad_input["NaN feature"]["verdict"] == "invalid output"


def test_an_impossible_json_path_is_refused_before_any_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = check(f"{HOSTILE}:never_returns", "--json", str(blocker / "v.json"))
    assert code == 2 and "--json" in output and "is a file, not a folder" in output, output


@pytest.mark.parametrize("init, message", [
    (["num_classes=3"], "--init num_classes is set by the checks"),
    (["feat_dim=3"], "--init feat_dim is set by the checks"),
    (["use_gpu=False", "use_gpu=True"], "--init use_gpu is given twice"),
])
def test_init_cannot_set_the_harness_sizes_or_repeat_a_key(init, message):
    options = [o for value in init for o in ("--init", value)]
    code, output = check(f"{SUPPORT / 'check_targets.py'}:PopularCenterLoss", *options)
    assert code == 2 and message in output, output


# --- a target's processes: found, named, killed, and the verdict fails ---

LEADER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from hostile_spawn import start_process
sys.stdin.readline()
start_process(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
print("started", flush=True)
time.sleep(3600)
"""
# What each command shows in /proc's command line.
SHOWN = {"sleep": "sleep 3600", "ignores_term": "-c import signal", "forks_more": "sleep"}


@pytest.fixture
def tag():
    """A word in the environment of the processes a test's target starts; any left at the end are killed (a
    containment that failed must not leave them to the next test)."""
    value = uuid.uuid4().hex
    yield value
    for pid in tagged(value):
        os.kill(pid, signal.SIGKILL)


def wait_for(condition):
    deadline = time.monotonic() + WAIT_S
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the target's processes are found through /proc")
@pytest.mark.parametrize("delay", [0.0, pytest.param(0.1, marks=pytest.mark.slow)])
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("how", SPAWNS)
def test_every_way_of_leaving_a_process_is_found_named_and_killed(tmp_path, how, command, delay, tag):
    """A bare Python session leader plays the target's process (as ablate.check.isolated's child, a session of its
    own); it starts the command as `how` says, now or from a thread; Containment must find every process, name it,
    and kill all of them."""
    leader = subprocess.Popen([sys.executable, "-c", LEADER, str(SUPPORT), how, command, tag, str(delay)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    contained = Containment()
    try:
        contained.watch(leader.pid)
        leader.stdin.write("go\n")
        leader.stdin.flush()
        assert leader.stdout.readline() == "started\n"
        named = wait_for(lambda: [s for s in contained.strays() if SHOWN[command] in s.command])  # once exec'd
        assert named and leader.pid not in {s.pid for s in named}, contained.strays()
        before = set(tagged(tag))
        strays = contained.strays()
        alive_throughout = before & set(tagged(tag))  # not a process that ended meanwhile
        assert {s.pid for s in named} <= before and alive_throughout <= {s.pid for s in strays}, (strays, before)
        killed = contained.end()
        assert {s.pid for s in named} <= {s.pid for s in killed}
        assert tagged(tag) == [] and contained.strays() == []
        assert leader.wait(WAIT_S) == -signal.SIGKILL
    finally:
        contained.close()
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def _leaver(how, command, delay, tag, hangs=False) -> list:
    inits = {"how": how, "command": command, "delay": delay, "tag": tag, "hangs": hangs}
    return [LEAVER, *(o for key, value in inits.items() for o in ("--init", f"{key}={value!r}"))]


# Through the command: the hardest member in the fast lane (out of the session, deaf to SIGTERM, started by a thread
# after the call); the whole product in the slow lane.
FAST_MEMBERS = [("daemon", "ignores_term", 0.2)]  # same_session and new_session: in the signal and capture tests
MEMBERS = [pytest.param(*member, marks=[] if member in FAST_MEMBERS else [pytest.mark.slow])
           for member in itertools.product(SPAWNS, COMMANDS, (0.0, 0.2))]


@pytest.mark.parametrize("how, command, delay", MEMBERS)
def test_a_target_that_leaves_a_process_fails_and_nothing_outlives_the_check(how, command, delay, tag):
    code, output = check(*_leaver(how, command, delay, tag))
    line = one_failure_line(output)
    assert code == 1 and "agrees" not in output, output
    assert "left processes running" in line and "pid " in line and SHOWN[command] in line, line
    assert tagged(tag) == []


def test_captured_output_of_a_check_whose_target_leaves_a_process_ends_with_the_check(tag):
    """`out=$(ablate check ...)` waits for every holder of the pipe: it returns once the check has ended, since
    the target's processes never held the check's stdout or stderr and were killed with it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ablate", "check", *_leaver("new_session", "sleep", 0.0, tag),
                           "--no-timing"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "left processes running" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and tagged(tag) == []


# --- signals: the target's processes killed, the status a shell gives that signal ---

@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143),
                                         pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)])
def test_a_signal_to_the_check_kills_its_target_and_gives_the_signal_status(sig, status, tag):
    """In this process: the signal arrives while the target hangs in a call, after it started a process."""
    def signal_once_started():
        if wait_for(lambda: tagged(tag)):
            os.kill(os.getpid(), sig)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever runs the tests
    sender = threading.Thread(target=signal_once_started, daemon=True)
    try:
        sender.start()
        code, output = check(*_leaver("same_session", "ignores_term", 0.0, tag, hangs=True), "--timeout", "120")
    finally:
        sender.join()
        signal.signal(signal.SIGINT, previous)
    assert code == status and f"check stopped by {signal.Signals(sig).name}" in output, output
    assert "Traceback" not in output and tagged(tag) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signalled_check_process_kills_its_target_and_exits_with_the_signal_status(sig, status, tag):
    """A real `ablate check` process; Ctrl-C as a terminal sends it, to the whole foreground group."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen([sys.executable, "-m", "ablate", "check", "--no-timing",
                            *_leaver("same_session", "ignores_term", 0.0, tag, hangs=True)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        started = wait_for(lambda: tagged(tag))
        assert started, job.communicate(timeout=WAIT_S)
        leader = os.getsid(started[0])  # the target's process: the session it started the command in
        os.killpg(job.pid, sig) if sig == signal.SIGINT else job.send_signal(sig)
        _, stderr = job.communicate(timeout=WAIT_S)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == status, stderr
    assert "Traceback" not in stderr and f"check stopped by {signal.Signals(sig).name}" in stderr, stderr
    assert tagged(tag) == [] and wait_for(lambda: not alive(leader))


# --- what the target prints: relayed, escaped, capped with a count ---

def test_a_target_printing_megabytes_is_relayed_escaped_and_capped_with_a_count():
    from tests.support.hostile_check_targets import ANSI_REPEATS, LOUD_BYTES

    code, output = check(f"{HOSTILE}:prints_megabytes")
    assert code == 0, output[-2000:]  # the loss is right: printing is no defect
    assert "\x1b" not in output and "\u202e" not in output and "\r" not in output  # shown escaped, never acted on
    assert "target stderr| \\x1b[31m\\x1b[2J\\u202eRED\\x0d" in output
    dropped = {label: int(count.replace(",", ""))
               for label, count in re.findall(r"^(target std\w+): ([\d,]+) more bytes not shown", output, re.M)}
    ansi_bytes = len("\x1b[31m\x1b[2J\u202eRED\r\n".encode()) * ANSI_REPEATS
    # every call of the suite prints the same: whatever their number, all but the cap is counted as dropped
    assert dropped["target stdout"] % LOUD_BYTES == LOUD_BYTES - RELAY_CAP_BYTES, dropped
    assert dropped["target stderr"] % ansi_bytes == ansi_bytes - RELAY_CAP_BYTES, dropped
    assert len(output) < 10 * RELAY_CAP_BYTES + 20_000  # escaping shows a byte in at most 6 characters


@pytest.mark.parametrize("text", [b"plain\n" * 5000, b"\x1b[2J" * 8000, "\u202e\u2066\r\n".encode() * 4000,
                                  b"\xff\xfe no UTF-8", b"one line without an end" * 1000])
def test_the_relay_shows_at_most_its_cap_escaped_and_counts_the_rest(capfd, text):
    read, write = os.pipe()
    relay = Relay("target stdout", read)
    os.write(write, text)  # blocks while the pipe is full: the relay reads as it is written
    os.close(write)
    relay.stop(WAIT_S)
    os.close(read)
    shown = capfd.readouterr().err
    assert relay.shown + relay.dropped == len(text) and relay.shown == min(len(text), RELAY_CAP_BYTES)
    assert all(line.startswith("target stdout") for line in shown.splitlines())
    assert not any(c in shown for c in "\x1b\u202e\u2066\r")
    assert (f"{relay.dropped:,} more bytes not shown" in shown) == (relay.dropped > 0)


# --- --timeout: finite values in a range that runs ---

@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "+Infinity", "1e308", "1e999", "-1e308", "1e-9", "-1",
                                   "0", "-0.0", "0.999", "86400.5", "1e5", "abc", "", "0x10", "1" * 500, "\x1b[2J5"])
def test_a_timeout_that_cannot_run_is_refused_in_one_line_naming_the_option(value):
    result = CliRunner().invoke(main, ["check", "gather", "--no-timing", "--timeout", value])
    low, high = TIMEOUT_RANGE_S
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "--timeout" in error[0] and f"[{low:g}, {high:g}]" in error[0], result.output
    assert len(error[0]) < 300 and "\x1b" not in result.output


@pytest.mark.parametrize("value, seconds", [("1", 1.0), ("60", 60.0), ("2.5", 2.5), ("86400", 86400.0)])
def test_a_timeout_in_range_is_taken(value, seconds):
    assert Seconds().convert(value, None, None) == seconds


# --- error lines: bounded and escaped whatever TARGET is called or raises ---

@pytest.mark.parametrize("target", ["x" * 1_000_000, "\x1b[2J\x1b[31mred", "\u202egather", "two\nlines",
                                    "missing/" + "\u2066" * 10_000 + ".py:loss", "\udcff.py:f"])
def test_a_target_named_anyhow_gets_one_bounded_escaped_error(target):
    result = CliRunner().invoke(main, ["check", target, "--no-timing"])
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(error) == 1 and len(error[0]) < 7000, result.output[-500:]
    assert not any(c in result.output for c in "\x1b\u202e\u2066\udcff"), result.output[-500:]


@pytest.mark.slow
def test_a_target_raising_a_megabyte_of_escapes_gets_a_bounded_note(tmp_path):
    path = tmp_path / "v.json"
    code, output = check(f"{HOSTILE}:raises_a_long_ansi_message", "--json", str(path))
    assert code == 1 and len(output) < 50_000 and "\x1b" not in output and "\u202e" not in output
    notes = [f["detail"] for f in json.loads(path.read_text())["findings"] if "ValueError" in f["detail"]]
    assert notes and all(len(note) < 2000 for note in notes)


# What a terminal acts on, by Unicode's own tables: controls (C0 but tab, DEL, C1), line and paragraph separators,
# surrogates, the bidirectional embeddings, overrides and isolates, and the three bidirectional marks.
BIDI_CONTROLS = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}
BIDI_MARKS = "\u200e\u200f\u061c"


def acted_on(c: str) -> bool:
    category = unicodedata.category(c)
    return (category in ("Cc", "Cs", "Zl", "Zp") and c != "\t") or c in BIDI_MARKS or \
        unicodedata.bidirectional(c) in BIDI_CONTROLS


def test_every_code_point_a_terminal_acts_on_is_shown_escaped_and_no_other():
    every = [chr(code) for code in range(0x110000)]
    changed = [c for c in every if terminal_text(c) != c]
    assert changed == [c for c in every if acted_on(c)]
    assert all(terminal_text(c).isascii() and terminal_text(c).isprintable() for c in changed)
    line = terminal_line("".join(every), 1000)
    assert line.endswith(f" ... ({len(every) - 1000:,} more characters)") and len(line) < 6 * 1000 + 50
