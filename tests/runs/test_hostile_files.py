"""What a file claims is bounded, and every reader of run and data folders names the file it refuses (issue:
hostile inputs, round two, items 1, 5 and 8's file cases)."""

import gzip
import io
import json
import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.data import load_dataset
from ablate.data.fashion_mnist import FILES
from ablate.grid.spec import load_spec
from ablate.io import MAX_INT_DIGITS, MAX_NESTING
from ablate.limits import FEATURE_ROWS_ENV
from ablate.runs import features, manifest, readers, schema, tables
from tests.support.fixture_runs import make_grid_run


def _fashion_folder(folder, images_header: bytes, body: bytes = bytes(100), trailer_size: int | None = None):
    """Four IDX files of 20 images each, but x_train's header and body replaced; trailer_size forges the
    gzip trailer's length field (what a file honest about its size would hold)."""
    for split in ("train", "test"):
        gzip.open(folder / FILES[f"x_{split}"], "wb").write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 20, 28, 28)
                                                             + bytes(20 * 784))
        gzip.open(folder / FILES[f"y_{split}"], "wb").write(bytes([0, 0, 8, 1]) + struct.pack(">I", 20) + bytes(20))
    data = bytearray(gzip.compress(images_header + body))
    if trailer_size is not None:
        data[-4:] = struct.pack("<I", trailer_size % 2**32)
    (folder / FILES["x_train"]).write_bytes(bytes(data))


def _fashion_error(folder) -> str:
    with pytest.raises(ValueError) as error:
        load_dataset.__wrapped__("fashion-mnist", str(folder))
    return str(error.value)


@pytest.mark.parametrize("claimed", [2_000_000, 4_294_967_295])
def test_an_idx_header_claiming_more_images_than_the_dataset_holds_is_refused_before_reading(tmp_path, claimed):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", claimed, 28, 28)
    _fashion_folder(tmp_path, header, trailer_size=len(header) + claimed * 784)
    message = _fashion_error(tmp_path)
    assert str(tmp_path / FILES["x_train"]) in message and f"claims {claimed:,} items" in message
    assert "over the limit of 60,000" in message


def test_a_two_byte_gz_file_is_named_not_a_seek_traceback(tmp_path):
    _fashion_folder(tmp_path, b"")
    (tmp_path / FILES["x_train"]).write_bytes(b"\x1f\x8b")
    assert f"{tmp_path / FILES['x_train']} is not a gzip file" in _fashion_error(tmp_path)


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("text, expected", [
    (_deep_json(200_000), f"nested deeper than the limit of {MAX_NESTING} levels"),
    (_deep_json(MAX_NESTING + 1), f"nested deeper than the limit of {MAX_NESTING} levels"),
    ('{"n": ' + "9" * 5001 + "}", f"over the limit of {MAX_INT_DIGITS}"),
])
def test_a_cell_json_too_deep_or_with_a_huge_integer_is_named(tmp_path, text, expected):
    path = tmp_path / "cells" / "0123456789ab.json"
    path.parent.mkdir()
    path.write_text(text)
    records, problems = readers.read_records(tmp_path)
    assert records == {} and len(problems) == 1 and str(path) in problems[0] and expected in problems[0]


@pytest.mark.parametrize("content, expected", [
    ("[axes]\nlambda = " + "[" * 5000 + "1" + "]" * 5000 + "\n", "nested deeper than the limit"),
    ("[axes]\nseed = " + "9" * 5001 + "\n", "not valid TOML"),
    ("[axes]\nseed = 99999999999999999999\n", "beyond int64"),
    ("[axes]\ndescription = 'caf\xe9'\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ("[axes]\nseed = 1\n".encode("utf-16"), "not UTF-8 text (byte 0xff"),
    (bytes(range(256)), "not UTF-8 text"),
])
def test_a_grid_file_that_is_deep_huge_or_not_utf8_is_named(tmp_path, content, expected):
    path = tmp_path / "grid.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ValueError) as error:
        load_spec(path)
    assert str(path) in str(error.value) and expected in str(error.value)
    with pytest.raises(schema.RunFolderError) as error:  # the same file as a run folder's grid.toml
        readers.read_grid_axes(tmp_path)
    assert str(path) in str(error.value) and expected in str(error.value)


@pytest.fixture
def grid_run(tmp_path):
    return make_grid_run(tmp_path / "run", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0, 1),
                         num_classes=4, feat_dim=2)


def _report(run, tmp_path):
    return CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "report.html")])


def _replace_by(path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_run_file_that_is_a_device_or_a_fifo_is_refused_without_reading(tmp_path, kind):
    path = tmp_path / "provenance.json"
    _replace_by(path, kind)
    what = "a FIFO" if kind == "fifo" else "a character device"
    with pytest.raises(schema.RunFolderError, match=f"{what}, not a regular"):
        readers.read_provenance(tmp_path)


@pytest.mark.parametrize("name, kind", [("provenance.json", "dev-zero"), ("grid.toml", "fifo")])
def test_a_run_file_that_is_a_device_or_a_fifo_is_left_out_and_the_report_goes_on(grid_run, tmp_path, name, kind):
    path = grid_run / name
    _replace_by(path, kind)
    result = _report(grid_run, tmp_path)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert f"{path}: a {'FIFO' if kind == 'fifo' else 'character device'}, not a regular file" in page


def test_a_corrupt_results_table_is_rebuilt_from_the_cells_with_a_note(grid_run, tmp_path):
    (grid_run / "results.parquet").write_bytes(b"PAR1 not really")
    results, notes = tables.load_results(grid_run, manifest.read_manifest(grid_run)["config_columns"])
    assert len(results) == 4 and any("results.parquet: not a readable parquet table" in n and "rebuilt" in n
                                     for n in notes)
    assert _report(grid_run, tmp_path).exit_code == 0


def test_a_repeated_row_of_results_is_left_out_with_a_note(grid_run):
    table = readers.read_table(grid_run / "results.parquet")
    table = table.iloc[[0, 0, 1, 2, 3]]
    table.to_parquet(grid_run / "results.parquet", index=False)
    results, notes = tables.load_results(grid_run, manifest.read_manifest(grid_run)["config_columns"])
    assert results["cell_id"].is_unique and len(results) == 4 and any("1 repeated row(s)" in n for n in notes)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("rows, dim, expected", [
    (1_000_000, 2, "features claims 1,000,000 rows, over the limit of 200,000 rows"),
    (10, 0, "features claims feature dimension D = 0; expected 1 to"),
])
def test_an_npz_claiming_too_many_rows_or_no_dimension_is_refused_before_loading(tmp_path, rows, dim, expected):
    path = tmp_path / "cell.npz"
    path.write_bytes(_npz(features=np.zeros((rows, dim), np.float32), labels=np.zeros(rows, np.int64),
                          centers=np.zeros((4, dim), np.float32)))
    with pytest.raises(schema.RunFolderError) as error:
        features.read_features(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_the_row_limit_is_settable(tmp_path, monkeypatch):
    path = tmp_path / "cell.npz"
    path.write_bytes(_npz(features=np.zeros((50, 2), np.float32), labels=np.arange(50) % 4,
                          centers=np.zeros((4, 2), np.float32)))
    assert len(features.read_features(path)["features"]) == 50
    monkeypatch.setenv(FEATURE_ROWS_ENV, "49")
    with pytest.raises(schema.RunFolderError, match="over the limit of 49 rows"):
        features.read_features(path)


def test_a_report_with_a_huge_or_empty_npz_leaves_the_cell_out_and_goes_on(grid_run, tmp_path):
    # the feature scatter reads one cell per lambda: every lambda = 0 cell claims 10^6 rows, every other has D = 0
    huge = _npz(features=np.zeros((10**6, 2), np.float32), labels=np.zeros(10**6, np.int64),
                centers=np.zeros((4, 2), np.float32))
    empty = _npz(features=np.zeros((10, 0), np.float32), labels=np.zeros(10, np.int64),
                 centers=np.zeros((4, 0), np.float32))
    for npz in (grid_run / "cells").glob("*.npz"):
        lam = json.loads(npz.with_suffix(".json").read_text())["lambda"]
        npz.write_bytes(huge if lam == 0 else empty)
    result = _report(grid_run, tmp_path)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert "over the limit of 200,000 rows" in page and "feature dimension D = 0" in page


def test_retrieval_in_chunks_equals_retrieval_at_once(monkeypatch):
    from ablate.metrics import features as feature_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 301)
    points = rng.normal(size=(301, 2)).round(1)  # rounded: ties and duplicates, where self-exclusion matters
    whole = feature_metrics.retrieval_per_query(points, labels)
    monkeypatch.setattr(feature_metrics, "RETRIEVAL_CHUNK_BYTES", 7 * feature_metrics.RETRIEVAL_BYTES_PER_ENTRY * 120)
    chunked = feature_metrics.retrieval_per_query(points, labels)  # 7 queries per chunk
    for key in whole:
        np.testing.assert_array_equal(chunked[key], whole[key])
    from sklearn.neighbors import NearestNeighbors  # and the neighbours are those of kneighbors() without X

    index = NearestNeighbors(n_neighbors=5).fit(points)
    np.testing.assert_array_equal(feature_metrics._neighbours_but_self(index, points, np.arange(301), 5),
                                  index.kneighbors(return_distance=False))
