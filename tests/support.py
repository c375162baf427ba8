"""Shared test plumbing: the repository root, small spec files, optional packages that CI must have."""

import importlib
import os
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
