"""The report in a real browser: headless Chromium opens it, every image decodes, nothing is logged as an
error and nothing is fetched. A report is a file people send each other: markup planted in every string field
that can reach it (grid values, cell records, bench, numerics and training-step tables, provenance, run folder
names) must show as text and never run. Control pages prove the same checks catch a broken page."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from chromium_page import chromium_binary, open_page
from report_fixture_runs import make_bench_run, make_grid_run

from ablate.report import build_report
from ablate.runs import manifest, schema
from ablate.runs.cells import CellStore


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
</body></html>"""  # noqa: E501 (a PNG data URI is one line)


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


PWNED = "pwned"


def img(field: str) -> str:
    """An image whose failed load would retitle the page; no "/" so that it can also name a folder."""
    return f"<img src=x onerror=document.title='{PWNED}' alt={field}>"


def script(field: str) -> str:
    """A script that would add an element to the page."""
    return f"<script>document.body.append(document.createElement('{PWNED}-{field}'))</script>"


def planted(field: str) -> str:
    return img(field) + script(field)


def plant_grid_run(tmp_path) -> tuple:
    """A grid run whose data_dir values, cell records, provenance and folder name carry markup.
    Returns (run folder, {field: planted text})."""
    values = {"data_dir 1": planted("data_dir-1"), "data_dir 2": planted("data_dir-2")}
    run = make_grid_run(tmp_path / img("grid-folder"), lambdas=(0.0, 0.1), alphas=(0.1, 0.5), rules=("paper",),
                        seeds=(0, 1), data_dirs=(values["data_dir 1"], values["data_dir 2"]))
    values["grid folder"] = img("grid-folder")
    store = CellStore(run)
    records, _ = store.records()
    template = next(iter(records.values()))
    # A failed cell whose string fields all carry markup, under the name its config hashes to.
    failed = {**template, "variant": planted("variant"), "rule": planted("rule"), "status": "failed",
              "error": planted("error")}
    failed["cell_id"] = schema.cell_id({c: failed[c] for c in manifest.read_manifest(run)["config_columns"]})
    store.save(failed["cell_id"], failed, None)
    values.update(variant=failed["variant"], rule=failed["rule"], error=failed["error"])
    # Records that cannot be used: their planted status and cell_id reach the page in the notes saying why.
    bad_status = {**template, "status": planted("status")}
    (run / "cells" / "0123456789ab.json").write_text(json.dumps({**bad_status, "cell_id": "0123456789ab"}))
    (run / "cells" / "ba9876543210.json").write_text(json.dumps({**template, "cell_id": planted("cell_id")}))
    values.update(status=planted("status"), cell_id=planted("cell_id"))
    for table in ("results.parquet", "results.csv", "summary.parquet", "summary.csv", "curves.parquet"):
        (run / table).unlink()  # rebuilt by the report from cells/, planted records included
    provenance = json.loads((run / "provenance.json").read_text())
    provenance.update(host=planted("provenance-host"), command=planted("provenance-command"),
                      **{planted("provenance-key"): planted("provenance-value")})
    (run / "provenance.json").write_text(json.dumps(provenance))
    values.update({f"provenance {k}": planted(f"provenance-{k}") for k in ("host", "command", "key", "value")})
    return run, values


def plant_bench_run(tmp_path) -> tuple:
    """A bench run whose note, device, variant and workload columns and folder name carry markup (the
    training-step table shows no device column)."""
    run = make_bench_run(tmp_path / img("bench-folder"))
    values = {"bench folder": img("bench-folder")}
    bench = pd.read_parquet(run / "bench.parquet")
    last = bench.index[-1]
    bench.loc[last, "note"] = values["bench note"] = planted("bench-note")
    bench["device"] = values["bench device"] = planted("bench-device")
    bench.loc[bench["variant"] == "compiled", "variant"] = values["bench variant"] = planted("bench-variant")
    bench.to_parquet(run / "bench.parquet", index=False)
    numerics = pd.read_parquet(run / "numerics.parquet")
    numerics.loc[numerics["note"] != "", "note"] = values["numerics note"] = planted("numerics-note")
    numerics.loc[numerics["variant"] == "compiled", "variant"] = values["numerics variant"] = planted(
        "numerics-variant")
    numerics.to_parquet(run / "numerics.parquet", index=False)
    steps = pd.read_parquet(run / "train_step.parquet")
    steps.loc[steps["workload"] == "large_head", "workload"] = values["train_step workload"] = planted("workload")
    steps.loc[steps.index[0], "note"] = values["train_step note"] = planted("train-step-note")
    steps.loc[steps["variant"] == "gather", "variant"] = values["train_step variant"] = planted("train-step-variant")
    steps.to_parquet(run / "train_step.parquet", index=False)
    return run, values


PAGE_STATE = {
    "title": "document.title",
    "text": "document.body.textContent",
    "planted elements": f"document.querySelectorAll('script, [onerror], [onload], [src=x]').length "
                        f"+ Array.from(document.body.querySelectorAll('*')).filter(e => e.localName.startsWith("
                        f"'{PWNED}')).length",
    "non-data images": "Array.from(document.images).filter(i => !i.src.startsWith('data:')).length",
}


def test_planted_markup_shows_as_text_and_never_runs(tmp_path):
    grid, grid_values = plant_grid_run(tmp_path)
    bench, bench_values = plant_bench_run(tmp_path)
    out = build_report([grid, bench], tmp_path / "report.html", progress=False)

    page = open_page(out, expressions=PAGE_STATE)

    state = page.values
    assert state["title"] == f"ablate report: {img('grid-folder')}, {img('bench-folder')}"  # as written, not "pwned"
    assert state["planted elements"] == 0
    assert state["non-data images"] == 0
    assert page.requests == [] and page.errors == []
    planted_values = {**grid_values, **bench_values}
    assert len(planted_values) == 21  # 12 through the grid run, 9 through the bench run
    missing = [field for field, value in planted_values.items() if value not in state["text"]]
    assert missing == []  # every planted value shows, as written


def test_the_markup_check_catches_markup_that_runs(tmp_path):
    """Control: the same checks on a page that inserts the planted values unescaped."""
    path = tmp_path / "control.html"
    path.write_text(f"<!DOCTYPE html><html><head><title>control</title></head><body>{img('a')}{script('b')}"
                    "</body></html>")

    state = open_page(path, expressions=PAGE_STATE).values

    assert state["title"] == PWNED and state["planted elements"] > 0 and state["non-data images"] == 1
