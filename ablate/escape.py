"""Text written into our own files, or onto a terminal, escaped for where it goes.

JSON (json.dumps, ASCII-only), CSV (pandas' quoting) and parquet escape through their libraries, HTML's markup
characters through jinja2's autoescape; TOML has no writer on the GPU machines, so its escaping is here: every
value and name that reaches a TOML file we write (grid.toml) goes through toml_value, toml_key or toml_comment.
html_characters then makes an escaped page valid HTML and UTF-8: what HTML forbids in text, and the characters that
reorder text (bidi controls such as U+202E), shown escaped. terminal_text and terminal_line do the same for a
terminal: what it would act on (ANSI sequences, bidi controls, carriage returns) shown escaped, and a line cut to a
bound with a count of what was cut.
"""

import math
import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
# What TOML forbids raw in a basic string or a comment: the C0 controls but tab, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def toml_string(text: str) -> str:
    """A TOML basic string ("...") holding `text` exactly: quotes, backslashes and control characters escaped,
    everything else (non-BMP characters included) written as itself in UTF-8. A lone surrogate (a file name
    Python decoded with surrogateescape) cannot be written in UTF-8 and becomes "?"."""
    text = _without_surrogates(text)
    return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _CONTROL.fullmatch(c) else c)
                         for c in text) + '"'


def _without_surrogates(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def toml_key(name: str) -> str:
    """A bare key when `name` is one, else a quoted key."""
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def toml_value(value) -> str:
    """A string, boolean, finite or non-finite float, integer, or flat list of those, in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a TOML value")


def _shown(match) -> str:
    """The matched character as \\xNN (below 256) or \\uNNNN."""
    code = ord(match.group())
    return "\\x%02x" % code if code < 256 else "\\u%04x" % code


# The characters that reorder the text around them (Unicode's bidirectional controls: LRM, RLM, ALM, the embeddings
# and overrides U+202A-U+202E, the isolates U+2066-U+2069): a file name holding U+202E shows its end reversed.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# HTML text may not hold the C0 controls but tab, LF, FF and CR, nor DEL; UTF-8 cannot hold a lone surrogate.
_HTML_FORBIDDEN = re.compile(rf"[\x00-\x08\x0b\x0e-\x1f\x7f\ud800-\udfff{BIDI_CONTROLS}]")


def html_characters(page: str) -> str:
    """An HTML page (its markup already escaped) with each character HTML text cannot hold, and each bidi control,
    shown as \\xNN or \\uNNNN, so that the page is valid, encodes to UTF-8 and reads in order whatever a run folder
    held."""
    return _HTML_FORBIDDEN.sub(_shown, page)


def toml_comment(text: str) -> list:
    """`text` as TOML comment lines ("# ..."), one per line of it, its control characters shown escaped (\\xNN)."""
    text = _without_surrogates(text)
    return [("# " + _CONTROL.sub(_shown, line)).rstrip() for line in text.split("\n")]


# What a terminal acts on instead of showing: the C0 controls but tab (ESC starts an ANSI sequence, CR overwrites a
# line), DEL, the C1 controls (0x9b is a one-byte CSI), Unicode's line and paragraph separators, the bidi controls,
# and lone surrogates (a name Python decoded with surrogateescape), which no terminal encoding holds.
_TERMINAL_CONTROL = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}\ud800-\udfff]")


def terminal_text(text: str) -> str:
    """`text` with every character a terminal would act on shown as \\xNN or \\uNNNN (newlines included): one line
    that prints as what it holds."""
    return _TERMINAL_CONTROL.sub(_shown, text)


def terminal_line(text: str, limit: int = 2000) -> str:
    """terminal_text of `text` cut to its first `limit` characters, with a count of those cut: a bounded line
    (at most 6 * limit characters plus the count) whatever `text` was."""
    if len(text) <= limit:
        return terminal_text(text)
    return f"{terminal_text(text[:limit])} ... ({len(text) - limit:,} more characters)"
