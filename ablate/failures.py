"""Failures kept as data: an exception or a traceback as the bounded text a table's note or a record's error holds.

    error_note(exc)     "TypeError: first line of the message", for a note column (bench rows, `ablate check`)
    error_tail(text)    the last ERROR_LINES lines of a traceback, for a failed cell's record
"""

ERROR_LINES = 8  # the last lines of a traceback kept in a failed cell's record


def error_note(exc: BaseException) -> str:
    """The error's type and the first line of its message, for a note."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def error_tail(text: str) -> str:
    """The last ERROR_LINES lines of `text` (a traceback), trailing blank lines dropped."""
    return "\n".join(text.rstrip().splitlines()[-ERROR_LINES:])
