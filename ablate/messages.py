"""What the command line says: every message bounded and escaped, every ending of a command one exit status.

    listed(items)          "a, b, c, d, e and 99,995 more (100,000 in all)": a list in a message, shortened
    bounded(text)          text for the terminal: escaped (ablate.escape.terminal_text), each line cut at MAX_LINE
                           characters and the whole at MAX_LINES lines, each cut counted
    say(text, err=False)   click.echo of bounded(text): a line that holds a value read from a file or a command line
                           (a table: say(text, max_lines=None), its every row shown)
    standalone(call)       run a Click command (call: its main in non-standalone mode) and end the process: its own
                           exit status, or at most one bounded message and the status of what ended it

standalone is the one way a command ends: a ClickException as Click shows it (usage and hint included), an interrupt
as 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), an OSError naming its file and errno, any other
exception as one line naming its type and where it was raised, never a traceback. Output the command already wrote
that cannot be flushed (a closed pipe, a full disk under stdout) ends it too, named.
"""

import errno
import io
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from ablate.escape import terminal_text
from ablate.io import UnwritableFile, errno_text
from ablate.signals import interrupt_status

MAX_LINE = 1_000  # characters of one line of a message
MAX_LINES = 40  # lines of one message
LISTED = 5  # items of a list shown before "and N more"


def listed(items: Iterable, shown: int = LISTED, separator: str = ", ") -> str:
    """The items as text, the first `shown` of them and then how many more and the total: "a, b, c and 9 more (12
    in all)". Items are shown with str()."""
    items = list(items)
    text = separator.join(str(item) for item in items[:shown])
    if len(items) > shown:
        text += f" and {len(items) - shown:,} more ({len(items):,} in all)"
    return text


def _cut_line(line: str, limit: int) -> str:
    """`line` cut to `limit` characters in its middle, so that both its start (what failed) and its end (often why:
    "(ENAMETOOLONG)") stay, saying how many were cut."""
    if len(line) <= limit:
        return line
    tail = limit // 3
    return f"{line[:limit - tail]}... ({len(line) - limit:,} more characters) ...{line[-tail:]}"


def bounded(text: str, max_line: int = MAX_LINE, max_lines: int | None = MAX_LINES) -> str:
    """`text` fit for a terminal: control and bidi characters shown escaped, each line cut in its middle at
    `max_line` characters and the text at `max_lines` lines (None: every line), each cut saying how much it left out."""
    lines = [terminal_text(line) for line in str(text).split("\n")]
    shown = lines if max_lines is None else lines[:max_lines]
    kept = [_cut_line(line, max_line) for line in shown]
    if len(shown) < len(lines):
        kept.append(f"... ({len(lines) - len(shown):,} more lines)")
    return "\n".join(kept)


def say(text: str, err: bool = False, max_lines: int | None = MAX_LINES) -> None:
    """Echo `text` bounded (see bounded): for every line that holds a value from a file, an option or a name."""
    click.echo(bounded(text, max_lines=max_lines), err=err)


def os_error_text(exc: OSError) -> str:
    """An OSError as one line naming its file (or files) and errno, e.g. "cannot use /x/y: File name too long
    (ENAMETOOLONG)"; an ablate.io error (which names its file) as its own message."""
    if isinstance(exc, UnwritableFile) or exc.strerror is None:
        return str(exc)
    if exc.filename is None:
        stream = _stream_written(exc)
        return f"cannot write to {stream}: {errno_text(exc)}" if stream else f"cannot complete: {errno_text(exc)}"
    where = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return f"cannot use {where}: {errno_text(exc)}"


_STREAMS = {1: "standard output", 2: "standard error"}


def _stream_written(exc: BaseException) -> str | None:
    """'standard output' (or error) when `exc` was raised writing to it (click.echo's `file`, or a stream's own
    write), else None."""
    tb = exc.__traceback__
    while tb is not None:
        for name in ("file", "self"):
            stream = tb.tb_frame.f_locals.get(name)
            try:
                number = stream.fileno() if stream is not None and hasattr(stream, "fileno") else None
            except (OSError, ValueError, AttributeError):
                number = None
            if number in _STREAMS:
                return _STREAMS[number]
        tb = tb.tb_next
    return None


def _raised_at(exc: BaseException) -> str:
    """'ablate/runs/readers.py:120': the last frame of the traceback inside this package, else the last frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    package = Path(__file__).resolve().parent
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(package)]
    if not (ours or frames):
        return "an unknown place"
    frame = (ours or frames)[-1]
    path = Path(frame.filename).resolve()
    shown = path.relative_to(package.parent) if path.is_relative_to(package.parent) else path
    return f"{shown}:{frame.lineno}"


def _interrupted(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or termination, ablate.signals) behind `exc`: itself, or what Click's Abort wraps."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _interrupt_line(interrupt: KeyboardInterrupt) -> str:
    """'ended by SIGTERM' (or what the Terminated raised says), 'interrupted' for Ctrl-C."""
    return str(interrupt) or "interrupted"


def _write(text: str) -> None:
    """Write a message on stderr; a stderr that cannot take it is given up on (there is nowhere left to say it)."""
    try:
        click.echo(text, err=True)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _flush_output() -> str | None:
    """Flush stdout; None, or the line saying why it could not be written."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`ablate ... | head`): nothing more to say to it
        _silence_stdout()
        return ""
    except OSError as exc:
        _silence_stdout()
        return f"cannot write to standard output: {errno_text(exc)}"
    except ValueError:  # stdout was closed
        return None
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit does not fail again."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (held until the process ends)
    except OSError:
        pass


def _status_and_message(call: Callable[[], object]) -> tuple[int, str | None]:
    """Run `call` (a Click main in non-standalone mode): (exit status, the message to show or None)."""
    try:
        status = call()
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0, None
        return 1, str(code)
    except click.ClickException as exc:
        buffer = io.StringIO()
        exc.show(file=buffer)
        return exc.exit_code, buffer.getvalue().rstrip("\n")
    except (click.Abort, KeyboardInterrupt) as exc:
        interrupt = _interrupted(exc)
        if interrupt is None:
            return 1, "Aborted!"
        return interrupt_status(interrupt), _interrupt_line(interrupt)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
            _silence_stdout()
            return 1, None
        return 1, f"Error: {os_error_text(exc)}"
    except Exception as exc:  # a bug: one line saying what and where, never a traceback
        return 1, (f"Error: internal error ({type(exc).__name__} at {_raised_at(exc)}): {exc}; this is a bug in "
                   "ablate, please report it with the command that gave it")
    return (status if isinstance(status, int) else 0), None


def standalone(call: Callable[[], object]) -> None:
    """Run `call` and end the process with its exit status, after at most one bounded message (see the module
    docstring). Never returns."""
    status, message = _status_and_message(call)
    flushed = _flush_output()
    if flushed:
        message = f"{message}\n{flushed}" if message else f"Error: {flushed}"
        status = status or 1
    if message:
        _write(bounded(message))
    sys.exit(status)
