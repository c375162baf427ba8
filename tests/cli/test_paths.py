"""Paths are named as what they are (issue: hostile inputs, round three, item 6): symlink loops, files, devices,
FIFOs, sockets and dangling links where a run folder, its cells/ or an output goes, through `ablate report`,
`ablate compare` and `ablate grid`, in process; and a valid gzip file of several members is read."""

import gzip
import os
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.data import load_dataset
from ablate.data.fashion_mnist import DEFAULT_DIR, FILES
from tests.support import assert_bounded_output
from tests.support.fixture_runs import make_grid_run


def _make(kind: str, path: Path) -> str:
    """Put a `kind` at `path`; returns how a message names it."""
    if kind == "a symlink loop to itself":
        path.symlink_to(path)
        return "a symlink loop"
    if kind == "a symlink loop of two links":
        other = path.with_name(path.name + "-b")
        path.symlink_to(other)
        other.symlink_to(path)
        return "a symlink loop"
    if kind == "a file":
        path.write_text("not a folder")
        return "a file"
    if kind == "a FIFO":
        os.mkfifo(path)
        return "a FIFO"
    if kind == "a socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
        return "a socket"
    if kind == "a dangling link":
        path.symlink_to(path.with_name("gone"))
        return "which does not exist"
    raise ValueError(kind)


KINDS = ["a symlink loop to itself", "a symlink loop of two links", "a file", "a FIFO", "a socket", "a dangling link"]


def run(args):
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output[-3000:]
    assert_bounded_output(result.output.replace("\r", "\n"))
    return result


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    return make_grid_run(tmp_path_factory.mktemp("paths") / "run", lambdas=(0.0, 0.1), alphas=(0.5,),
                         rules=("paper",), seeds=(0, 1), features=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_folder_that_is_not_one_is_named_as_what_it_is(tmp_path, grid_run, kind):
    path = tmp_path / "run"
    said = _make(kind, path)
    for args in (["report", str(path), "--out", str(tmp_path / "r.html")], ["compare", str(path), str(grid_run)],
                 ["compare", str(grid_run), str(path)]):
        result = run(args)
        assert result.exit_code == 2 and said in result.output and "not a run folder" in result.output, result.output
        assert "does not exist" not in result.output or kind == "a dangling link"


@pytest.mark.parametrize("target", ["/dev/null", "/dev/zero"])
def test_a_device_given_as_a_run_folder_is_named_a_device(grid_run, target):
    for args in (["compare", str(grid_run), target], ["report", target, "--out", "/nonexistent/r.html"]):
        result = run(args)
        assert result.exit_code == 2, result.output
        if args[0] == "compare":
            assert f"{target} is a character device, not a run folder" in result.output


@pytest.mark.parametrize("kind", KINDS)
def test_a_cells_folder_that_is_not_one_is_named_by_report_compare_and_grid(tmp_path, grid_run, kind):
    run_dir = tmp_path / "run"
    shutil.copytree(grid_run, run_dir)
    shutil.rmtree(run_dir / "cells")
    for table in ("results", "summary", "curves"):
        (run_dir / f"{table}.parquet").unlink()
    said = _make(kind, run_dir / "cells")
    report = run(["report", str(run_dir), "--out", str(tmp_path / "r.html")])
    compare = run(["compare", str(grid_run), str(run_dir)])
    for result in (report, compare):  # not an empty run: the folder holds no results, because cells/ is ...
        assert result.exit_code == 2 and f"{run_dir / 'cells'} is " in result.output and said in result.output, \
            result.output
    grid = run(["grid", "--set", "epochs=1", "--out", str(run_dir)])
    assert grid.exit_code == 1 and f"{run_dir / 'cells'} is " in grid.output and said in grid.output, grid.output


@pytest.mark.parametrize("kind", KINDS)
def test_a_grid_out_that_is_not_a_folder_is_named_as_what_it_is(tmp_path, kind):
    said = _make(kind, tmp_path / "out")
    result = run(["grid", "--set", "epochs=1", "--out", str(tmp_path / "out")])
    assert result.exit_code in (1, 2) and said.split()[-1] in result.output, result.output


# --- gzip of several members ----------------------------------------------------------------------------------------

def _two_members(data: bytes) -> bytes:
    """`data` as a valid gzip file of two members (what `cat a.gz b.gz` makes), split in the middle."""
    return gzip.compress(data[:len(data) // 2]) + gzip.compress(data[len(data) // 2:])


def test_an_idx_file_of_two_gzip_members_is_read(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 30), ("test", 20)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        (tmp_path / FILES[f"x_{split}"]).write_bytes(
            _two_members(bytes([0, 0, 8, 3]) + struct.pack(">3I", count, 28, 28) + images.tobytes()))
        (tmp_path / FILES[f"y_{split}"]).write_bytes(
            _two_members(bytes([0, 0, 8, 1]) + struct.pack(">I", count) + labels.tobytes()))
    data = load_dataset.__wrapped__("fashion-mnist", str(tmp_path), val_fraction=0.0)
    assert len(data.train) == 30 and len(data.test()) == 20


@pytest.mark.slow  # 30 MB decompressed and recompressed
@pytest.mark.skipif(not (DEFAULT_DIR / FILES["y_test"]).exists(), reason="Fashion-MNIST is not installed here")
def test_the_fashion_mnist_release_recompressed_as_two_gzip_members_reads_as_the_release(tmp_path):
    for name in FILES.values():
        (tmp_path / name).write_bytes(_two_members(gzip.decompress((DEFAULT_DIR / name).read_bytes())))
    ours, release = load_dataset.__wrapped__("fashion-mnist", str(tmp_path)), load_dataset("fashion-mnist")
    assert np.array_equal(ours.test().y, release.test().y) and np.array_equal(ours.train.x, release.train.x)
