"""Every write catches its OS error by name, names the file and keeps what was there; a trained cell's result is
never lost (issue: hostile inputs, round three, item 4). Generated members of the class (a full disk as a file-size
limit, a read-only folder, a 300-character name, a path under a file, a folder where a file goes, a symlink loop)
through every command that writes: in process where the failure can be set up there, in a subprocess with
RLIMIT_FSIZE for a full disk (the command line ignores SIGXFSZ, so the write fails with EFBIG instead of killing it).
"""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.gate import baseline, expected_counts
from ablate.io import TEMP_MARK
from tests.support import ROOT, assert_bounded_output, write_toml
from tests.support.fixture_runs import make_grid_run

READ_ONLY = Path("/sys")  # root may write anywhere else; nobody may create a file in /sys
needs_read_only = pytest.mark.skipif(os.access(READ_ONLY, os.W_OK) and not Path("/sys/fs").exists(),
                                     reason="no read-only folder here")


def _out(kind: str, tmp_path: Path, name: str) -> Path:
    """A path where `name` cannot be written, as member `kind` spoils it."""
    if kind == "a 300-character name":
        return tmp_path / ("n" * 300 + "-" + name)
    if kind == "a path under a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / name
    if kind == "a folder where a file goes":
        (tmp_path / name).mkdir()
        return tmp_path / name
    if kind == "a read-only folder":
        return READ_ONLY / name
    if kind == "a symlink loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        return tmp_path / "loop" / name
    raise ValueError(kind)


UP_FRONT = ("a 300-character name", "a path under a file", "a folder where a file goes", "a read-only folder",
            "a symlink loop")
WHY = {"a 300-character name": "ENAMETOOLONG", "a path under a file": "is a file, not a folder",
       "a folder where a file goes": "is a folder; expected a file name", "a read-only folder": "takes no new file",
       "a symlink loop": "a symlink loop"}
# Commands writing to a path given on the command line, refused before any work when the path cannot take it.
COMMANDS = {
    "grid": lambda out: ["grid", "--set", "epochs=1", "--out", str(out)],
    "bench run": lambda out: ["bench", "run", "--suite", "quick", "--variants", "gather", "--out", str(out)],
    "bench world": lambda out: ["bench", "world", "--world", "1", "--quick", "--out", str(out)],
    "report": lambda out: ["report", str(ROOT / "runs"), "--out", str(out)],
    "train --out": lambda out: ["train", "--epochs", "1", "--no-progress", "--out", str(out)],
    "train --features": lambda out: ["train", "--epochs", "1", "--no-progress", "--features", str(out)],
}
FILE_NAMES = {"report": "r.html", "train --out": "r.json", "train --features": "f.npz"}


# `train --out FOLDER` makes FOLDER a run folder (ablate.train.cli.is_run_folder): a folder there is no fault.
MEMBERS = [(command, kind) for command in COMMANDS for kind in UP_FRONT
           if (command, kind) != ("train --out", "a folder where a file goes")]


@pytest.mark.parametrize("command, kind", MEMBERS)
def test_an_output_that_cannot_be_written_is_refused_before_any_work_naming_it(tmp_path, command, kind):
    if kind == "a read-only folder" and not READ_ONLY.exists():
        pytest.skip("no /sys")
    name = FILE_NAMES.get(command, "run")
    if kind == "a folder where a file goes" and command not in FILE_NAMES:
        kind_out = tmp_path / name
        kind_out.write_text("")  # the reverse for a command writing a folder: a file where the folder goes
        why = "is a file"  # Click's own words for a file= False option: "Directory '...' is a file."
    elif kind == "a folder where a file goes":
        kind_out, why = _out(kind, tmp_path, name), "is a directory"  # Click's words for dir_okay=False
    else:
        kind_out, why = _out(kind, tmp_path, name), WHY[kind]
    result = CliRunner().invoke(main, COMMANDS[command](kind_out))
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output[-2000:]
    assert_bounded_output(result.output)
    assert why in result.output and kind_out.name[:50] in result.output, result.output[-2000:]


# --- a train result is never lost once trained ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real digits cell: its record and the bytes of its features, to hand back from a stand-in run_cell."""
    from ablate.train import CellConfig, run_cell

    folder = tmp_path_factory.mktemp("trained")
    record = run_cell(CellConfig(epochs=1), features_path=folder / "f.npz")
    return record, (folder / "f.npz").read_bytes()


def _spoil_after_training(kind: str, folder: Path) -> None:
    """What happens to the output folder while the cell trains: replaced by a file, by a link to a read-only folder
    or by a symlink loop, or the output names turned into folders."""
    if kind == "the folder replaced by a file":
        folder.rmdir()
        folder.write_text("")
    elif kind == "the file names taken by folders":
        (folder / "r.json").mkdir()
        (folder / "f.npz").mkdir()
    elif kind == "the folder turned read-only":
        folder.rmdir()
        folder.symlink_to(READ_ONLY)
    elif kind == "the folder turned into a symlink loop":
        folder.rmdir()
        folder.symlink_to(folder)


AFTER_TRAINING = {"the folder replaced by a file": "ENOTDIR", "the file names taken by folders": "EISDIR",
                  "the folder turned read-only": "EACCES", "the folder turned into a symlink loop": "ELOOP"}


@pytest.mark.parametrize("kind", AFTER_TRAINING)
def test_a_trained_cell_whose_outputs_cannot_be_written_keeps_them_elsewhere_and_says_where(tmp_path, monkeypatch,
                                                                                             trained, kind):
    import ablate.train.cli

    record, features = trained
    folder = tmp_path / "out"
    folder.mkdir()

    def train_then_spoil(config, features_path=None, progress=False, **options):  # weights_path, loader_workers, ...
        Path(features_path).write_bytes(features)
        _spoil_after_training(kind, folder)
        return record

    monkeypatch.setattr(ablate.train.cli, "run_cell", train_then_spoil)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--no-progress", "--out", str(folder / "r.json"),
                                       "--features", str(folder / "f.npz")])
    assert result.exit_code == 1, result.output
    assert_bounded_output(result.output)
    assert f"training finished, but cannot write {folder / 'r.json'}: " in result.output
    assert AFTER_TRAINING[kind] in result.output
    kept = {path.suffix: path for path in (tmp_path / "tmp").glob("ablate-train-*")}
    assert set(kept) == {".json", ".npz"}, list((tmp_path / "tmp").iterdir())
    assert f"the record was written to {kept['.json']} instead" in result.output
    assert f"the features was written to {kept['.npz']} instead" in result.output
    assert json.loads(kept[".json"].read_text()) == json.loads(json.dumps(record))
    assert kept[".npz"].read_bytes() == features


# --- the gate's own files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["a 300-character name", "a path under a file", "a folder where a file goes",
                                  "a read-only folder"])
@pytest.mark.parametrize("command", ["counts --write", "baseline"])
def test_the_gate_names_the_file_it_cannot_write(tmp_path, monkeypatch, command, kind):
    out = _out(kind, tmp_path, "gate.json")
    if command == "baseline":
        write, monkeypatch_name, module = baseline.write_baseline, "write_baseline", baseline
        monkeypatch.setattr(baseline, "measure_ratios", lambda: {"case": 1.0})
    else:
        write, monkeypatch_name, module = expected_counts.write, "write", expected_counts
        monkeypatch.setattr(expected_counts, "measure", lambda: {
            "case": {"ops": {"aten::add": 1}, "flops": 0, "bytes": 8, "peak_bytes": 8}})
    monkeypatch.setattr(module, monkeypatch_name, lambda measured: write(measured, path=out))
    result = CliRunner().invoke(main, ["gate", *command.split()])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert_bounded_output(result.output)
    said = {"a 300-character name": ("ENAMETOOLONG",), "a path under a file": ("ENOTDIR",),
            "a folder where a file goes": ("EISDIR", "a folder, not a regular file"), "a read-only folder": ("EACCES",)}
    assert str(out)[-60:] in result.output and any(s in result.output for s in said[kind]), result.output


# --- a full disk: the file-size limit, in a process of its own --------------------------------------------------------

def _limited(args: list, limit: int, cwd: Path, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """`python -m ablate ARGS` with files limited to `limit` bytes (RLIMIT_FSIZE: a write beyond it fails as on a full
    disk)."""
    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "ablate", *args], cwd=cwd, env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, preexec_fn=limit_files, timeout=600)


def _no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob(f"*{TEMP_MARK}*") if p.is_file()], list(folder.rglob("*"))


FULL_DISK = {  # the command and the largest file it may write: each fails at a write after its work
    "grid --force over a finished run": ("grid", 6_000),
    "report over an earlier page": ("report", 6_000),
    "bench run": ("bench run", 1_500),
    "bench world": ("bench world", 6_000),  # its ranks' own files fit, its table does not
    "train --out": ("train", 1_000),
    "compare to a full stdout": ("compare", 100),
}


@pytest.mark.parametrize("member", [pytest.param(m, marks=pytest.mark.slow) if m.startswith("bench") else m
                                    for m in FULL_DISK])  # a bench's own process takes longest
def test_a_full_disk_is_named_with_its_file_and_keeps_what_was_there(tmp_path, member):
    command, limit = FULL_DISK[member]
    run = make_grid_run(tmp_path / "run", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0,), epochs=1)
    kept = {p: p.read_bytes() for p in (run / "cells").iterdir()}  # a grid rerun rewrites run.json and provenance
    if command == "grid":
        spec = write_toml(tmp_path, """
            [axes]
            dataset = "synthetic"
            num_classes = 4
            feat_dim = 2
            epochs = 1
            lambda = [0.0, 0.1]
            alpha = 0.5
            rule = "paper"
            variant = "gather"
        """)
        done = _limited(["grid", str(spec), "--out", str(run), "--force", "--quiet"], limit, tmp_path)
    elif command == "report":
        page = tmp_path / "r.html"
        page.write_text("the earlier page")
        kept = {page: page.read_bytes()}
        done = _limited(["report", str(run), "--out", str(page)], limit, tmp_path)
    elif command == "bench run":
        kept = {}
        done = _limited(["bench", "run", "--suite", "quick", "--variants", "gather", "--mode", "forward", "--batch",
                         "8", "--classes", "10", "--dim", "4", "--out", str(tmp_path / "b")], limit, tmp_path)
    elif command == "bench world":
        kept = {}
        done = _limited(["bench", "world", "--world", "1", "--quick", "--classes", "10", "--batch", "8", "--dim", "4",
                         "--mode", "update", "--out", str(tmp_path / "w")], limit, tmp_path)
    elif command == "train":
        kept = {}
        done = _limited(["train", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r.json")], limit,
                        tmp_path)
        printed = done.stdout[done.stdout.index("\n{") + 1:]
        assert json.loads(printed)["status"] == "ok"  # no file took the record: it is on stdout, whole
        assert f"cannot write {tmp_path / 'r.json'}: File too large (EFBIG)" in done.stderr
    else:
        with open(tmp_path / "out.txt", "w") as stdout:
            done = _limited(["compare", str(run), str(run)], limit, tmp_path, stdout=stdout)
        assert "cannot write to standard output: File too large (EFBIG)" in done.stderr
    assert done.returncode == 1, done.stderr[-3000:]
    assert_bounded_output(done.stderr.replace("\r", "\n"))
    assert "File too large (EFBIG)" in done.stderr and "Traceback" not in done.stderr
    if command != "compare":
        assert f"cannot write {tmp_path}" in done.stderr, done.stderr[-3000:]
    for path, content in kept.items():
        assert path.read_bytes() == content, path
    for path in tmp_path.rglob("*.json"):  # whatever was written is whole
        json.loads(path.read_text())
    _no_temp_files(tmp_path)
