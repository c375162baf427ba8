"""Atomic writes: a result file is whole or absent, with the mode an ordinary open() would give it."""

import os
import stat

import pandas as pd
import pytest

from ablate.io import atomic_write_json, atomic_write_table, atomic_write_with


def test_written_file_has_the_umask_mode_not_mkstemps_0600(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_json(tmp_path / "cell.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_writer_leaves_neither_target_nor_temp_file(tmp_path):
    def failing_writer(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_with(tmp_path / "results.csv", failing_writer)
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_whole_file(tmp_path):
    target = atomic_write_json(tmp_path / "cell.json", {"status": "ok"})

    def failing_writer(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, failing_writer)
    assert target.read_text().strip().startswith("{") and '"ok"' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_table_written_as_parquet_and_csv(tmp_path):
    df = pd.DataFrame({"lambda": [0.0, 0.1], "test_accuracy": [0.9, 0.95]})
    atomic_write_table(df, tmp_path / "results")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results.parquet"), df)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results.csv"), df)
