"""The report in a real browser: headless Chromium opens it, every image decodes, nothing is logged as an
error and nothing is fetched. A control page proves the same check catches a broken page."""

import os
import shutil
from pathlib import Path

import pytest

from ablate.report import build_report
from chromium_page import chromium_binary, open_page
from report_fixture_runs import make_bench_run, make_grid_run


@pytest.fixture(scope="module", autouse=True)
def chromium():
    if chromium_binary() is None:
        message = "chromium is not installed (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the browser test, never skip it
        pytest.skip(message)


def test_report_renders_in_chromium(tmp_path):
    grid = make_grid_run(tmp_path / "grid", lambdas=(0.0, 0.01, 0.1), variants=("gather", "naive"))
    bench = make_bench_run(tmp_path / "bench", device="cuda", variants=("naive", "gather", "fused"))
    out = build_report([grid, bench], tmp_path / "report.html", progress=False)

    page = open_page(out)

    assert page.errors == []
    assert page.requests == []
    expected_images = out.read_text().count("<img ")
    assert len(page.images) == expected_images == 11  # grid 5, bench 6 (time, speedup, roof over C and B)
    broken = [img for img in page.images if img["width"] == 0 or img["error"]]
    assert broken == []
    assert page.screenshot.startswith(b"\x89PNG") and page.page_height > 3000
    # Kept for a person to look at: set ABLATE_SCREENSHOT_DIR to a folder.
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    if os.environ.get("ABLATE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ABLATE_SCREENSHOT_DIR"]) / "report.png")


CONTROL_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>control</title></head><body>
<img alt="good" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==">
<img alt="corrupt" src="data:image/png;base64,AAAA">
<img alt="remote" src="http://127.0.0.1:9/figure.png">
<script>console.error("boom");</script>
</body></html>"""


def test_the_browser_check_catches_a_broken_page(tmp_path):
    path = tmp_path / "control.html"
    path.write_text(CONTROL_PAGE)

    page = open_page(path)

    by_alt = {img["alt"]: img for img in page.images}
    assert by_alt["good"]["width"] == 1 and by_alt["good"]["error"] == ""
    assert by_alt["corrupt"]["width"] == 0 and by_alt["corrupt"]["error"]
    assert by_alt["remote"]["width"] == 0
    assert page.requests == ["http://127.0.0.1:9/figure.png"]
    assert any("boom" in e for e in page.errors)
