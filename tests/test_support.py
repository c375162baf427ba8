"""The test plumbing itself: a missing optional package skips locally and fails under CI."""

import pytest

from tests.support import require


def test_a_missing_package_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_package is not installed"):
        require("no_such_package", "for this test")


def test_a_missing_package_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_package is not installed"):
        require("no_such_package", "for this test")


def test_a_present_package_is_returned():
    assert require("json", "stdlib").dumps([1]) == "[1]"
