"""Shared test plumbing: the repository root, this folder of helpers (SUPPORT), small spec files, optional packages
that CI must have."""

import importlib
import os
import re
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent  # this package: helper modules, check targets and steps loaded by path
ROOT = SUPPORT.parents[1]


def write_toml(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    """Write the dedented `text` to tmp_path/name; returns its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def require(module: str, why: str):
    """Import `module` or skip the test module; under CI (where `make install` provides every extra) fail
    instead, so that a broken install cannot quietly drop tests."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed ({why})"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


@contextmanager
def registered(*pairs):
    """Register each (registry, entry) of `pairs` for the `with` block, and unregister them after it."""
    done = []
    try:
        for registry, entry in pairs:
            done.append((registry, registry.register(entry)))
        yield
    finally:
        for registry, entry in reversed(done):
            registry.unregister(entry.name)


# Characters a message on a terminal never holds raw (ablate.escape.terminal_text shows them escaped): C0 and C1
# controls but tab and line feed, and the bidi controls.
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_bounded_output(output: str) -> None:
    """What a command printed, as the command line's one error path bounds it (ablate.messages): no traceback, no
    raw control or bidi character, no line over MAX_LINE characters (and the note of what was cut), at most
    MAX_LINES lines of one message (and the usage lines Click prints before it)."""
    from ablate.messages import MAX_LINE, MAX_LINES

    assert "Traceback" not in output, output[-3000:]
    raw = _RAW_CONTROL.search(output)
    assert raw is None, (raw, output[max(0, raw.start() - 200):raw.start() + 200])
    lines = output.splitlines()
    longest = max(lines, key=len, default="")
    assert len(longest) <= MAX_LINE + len("... (999,999,999 more characters) ..."), longest[:300]
    assert len(lines) <= MAX_LINES + 4, lines[:50]
