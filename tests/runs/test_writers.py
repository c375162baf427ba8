"""Only ablate/runs/ opens a run folder's files for writing.

The rule, checked by scanning the package's source:
- A run folder's files are those ablate.runs.schema names: run.json, provenance.json, grid.toml, .lock, cells/,
  parts/, .scratch/ and the tables (<name>.parquet, .csv). Inside ablate/runs/ only the writing modules (folder,
  cells, parts) write; the readers write nothing.
- Outside ablate/runs/, a module that writes files (a call of ablate.io's writers, open() or os.open() for writing,
  Path.write_*, to_parquet/to_csv, numpy or torch saving, mkdir, unlink, rmtree, os.replace/rename/remove) is one of
  WRITERS_ELSEWHERE, each with the files it writes: a path the user chose (`ablate report --out`, `ablate train
  --out/--features`, `ablate check --json`), or files of its own (a rank's result in the launcher's temp folder, the
  gate's baseline and worktrees). A new writer fails this test until it is listed here with what it writes.
- None of those modules names a run folder's files: it imports none of the schema's file names or path helpers and
  spells none of them.
The grid's executors and cells write into a temp folder they are handed (RUN_DIR/.scratch/<a folder of their own>,
made by ablate.runs.cells): lent space, never read as a result, removed by ablate.runs when the run ends.
A second test follows a real grid write and a bench write with an audit hook: every file event inside the run
folder comes from ablate.runs. That the readers (and analysis/) import no writer is import-linter's contract in
pyproject.toml (tests/test_layers.py).
"""

import ast
import sys
from pathlib import Path

from ablate.runs import schema
from tests.support import ROOT

PACKAGE = ROOT / "ablate"
RUNS = PACKAGE / "runs"
RUNS_WRITERS = {"folder.py", "cells.py", "parts.py"}  # the writing side of ablate/runs/

# module (path from ablate/) -> what it writes; none of it is a run folder's file
WRITERS_ELSEWHERE = {
    "io.py": "the atomic writers themselves, to the path a caller gives",
    "report/build.py": "the HTML report, to `ablate report --out`",
    "train/keep.py": "a trained cell's record, features and weights, to `ablate train --out/--features/"
                     "--save-weights`, or to a fallback file in the temp or working folder when those cannot take them",
    "messages.py": "the null device, standard output's stand-in once standard output cannot take more",
    "train/cell.py": "a cell's features (.npz) and weights (.safetensors), to the temp folder `ablate train` or a grid "
                     "cell is given",
    "export/cli.py": "a cell's kept weights and record, copied to `ablate export --out` (never into a run folder)",
    "check/cli.py": "the conformance verdict, to `ablate check --json`",
    "distributed/launch.py": "each rank's result and error, in the launcher's own temp folder",
    "grid/executors.py": "removes its own temp folder (made in the scratch folder ablate.runs lends it)",
    "bench/distributed.py": "/proc/self/clear_refs (resets the peak resident set), no file",
    "gate/baseline.py": "ablate/gate/baseline.json (`ablate gate baseline`)",
    "gate/expected_counts.py": "ablate/gate/expected_counts.json (`ablate gate counts --write`)",
    "gate/instructions.py": "valgrind's spec and log, in its own temp folder",
    "gate/ab.py": "each gate case's inputs (.pt), in the gate's own temp folder",
    "gate/sides.py": "the request pipe to a worker process",
    "gate/worker.py": "the A/B worker's result file and its reply pipe, paths its parent gives",
    "gitrepo.py": "removes a temporary git worktree it made (the gate's base revision)",
}

WRITING_NAMES = {"atomic_write_with", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
                 "atomic_write_table", "write_text", "write_bytes", "to_parquet", "to_csv", "savez",
                 "savez_compressed", "mkdir", "unlink", "rmtree", "remove_temp_files", "replace", "rename", "remove"}
DOTTED_WRITERS = {"torch.save", "np.save", "numpy.save", "os.replace", "os.rename", "os.remove", "shutil.rmtree",
                  "shutil.move", "shutil.copy", "shutil.copyfile"}
FILE_NAMES = ("MANIFEST", "PROVENANCE", "GRID_SPEC", "CELLS", "PARTS", "LOCK", "SCRATCH")
PATH_HELPERS = ("record_path", "features_path", "weights_path", "table_path")
TABLES = (schema.RESULTS, schema.SUMMARY, schema.CURVES, schema.BENCH, schema.NUMERICS, schema.TRAIN_STEP,
          schema.DISTRIBUTED)
SPELLED = {getattr(schema, name) for name in FILE_NAMES} | {f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _opens_for_writing(call: ast.Call) -> bool:
    """open(path, "w"), os.fdopen(fd, "w"), os.open(path, os.O_WRONLY | ...), Path.open("w"): a mode with w, a, x
    or +, or flags naming O_WRONLY, O_RDWR or O_CREAT."""
    name = _dotted(call.func)
    if not (name in ("open", "os.open", "os.fdopen", "io.open") or name.endswith(".open")):
        return False
    for arg in [*call.args, *(k.value for k in call.keywords if k.arg in ("mode", "flags"))]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and set(arg.value) & set("wax+"):
            return True
        if any(isinstance(n, ast.Attribute) and n.attr in ("O_WRONLY", "O_RDWR", "O_CREAT") for n in ast.walk(arg)):
            return True
    return False


def writes(tree: ast.AST) -> list[str]:
    """The calls in `tree` that write, create or remove files, as 'line: call' (a write into an io.BytesIO is
    none)."""
    buffers = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
               and _dotted(node.value.func) in ("io.BytesIO", "BytesIO")
               for target in node.targets if isinstance(target, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in buffers:
            continue
        name = _dotted(node.func)
        leaf = name.rsplit(".", 1)[-1]
        # str.replace and dict-like .remove are not file writes: replace/rename/remove count only on os or a path
        path_like = leaf not in ("replace", "rename", "remove") or name.startswith(("os.", "Path"))
        if (leaf in WRITING_NAMES and path_like) or name in DOTTED_WRITERS or _opens_for_writing(node):
            found.append((node.lineno, name))
    return [f"{line}: {name}" for line, name in sorted(found)]


def run_folder_names(tree: ast.AST) -> list[str]:
    """The run folder's file names and path helpers a module imports from ablate.runs, or spells as strings."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ablate.runs"):
            found += [a.name for a in node.names if a.name in (*FILE_NAMES, *PATH_HELPERS)]
        elif isinstance(node, ast.Attribute) and node.attr in (*FILE_NAMES, *PATH_HELPERS) \
                and _dotted(node.value).endswith("schema"):
            found.append(_dotted(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SPELLED:
            found.append(repr(node.value))
    return found


def _modules() -> dict[str, ast.AST]:
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_only_the_writing_modules_of_ablate_runs_write():
    trees = _modules()
    in_runs = {path: writes(tree) for path, tree in trees.items() if path.startswith("runs/")}
    assert {path for path, calls in in_runs.items() if calls} == {f"runs/{name}" for name in RUNS_WRITERS}, in_runs
    elsewhere = {path: calls for path, tree in trees.items() if not path.startswith("runs/")
                 and (calls := writes(tree))}
    unlisted = {path: calls for path, calls in elsewhere.items() if path not in WRITERS_ELSEWHERE}
    assert not unlisted, f"modules outside ablate/runs/ that write files, not in WRITERS_ELSEWHERE: {unlisted}"
    assert set(WRITERS_ELSEWHERE) == set(elsewhere), "WRITERS_ELSEWHERE lists modules that no longer write: " \
        f"{sorted(set(WRITERS_ELSEWHERE) - set(elsewhere))}"
    naming = {path: names for path in elsewhere if (names := run_folder_names(trees[path]))}
    assert not naming, f"modules outside ablate/runs/ that write files and name a run folder's files: {naming}"


def test_the_scan_finds_a_write_and_a_run_folder_name():
    tree = ast.parse("from ablate.runs.schema import PROVENANCE\n"
                     "def f(p):\n"
                     "    open(p, 'a').write('x')\n"
                     "    os.open(p, os.O_WRONLY | os.O_CREAT)\n"
                     "    open(p).read()\n"
                     "    p.write_text('results.csv')\n"
                     "    'a'.replace('a', 'b')\n"
                     "    torch.save({}, p)\n"
                     "    buffer = io.BytesIO()\n"
                     "    np.savez(buffer, x=1)\n")
    assert writes(tree) == ["3: open", "4: os.open", "6: p.write_text", "8: torch.save"]
    assert run_folder_names(tree) == ["PROVENANCE", "'results.csv'"]


def test_every_file_event_of_a_grid_and_a_bench_run_inside_their_folders_comes_from_ablate_runs(tmp_path):
    """A grid and a bench run, in this process, under an audit hook: every open for writing, rename, removal and
    folder made inside the run folder has ablate.runs on the stack (the scratch folder ablate.runs lends the cells
    aside)."""
    from dataclasses import replace

    import torch

    from ablate.bench.runner import run_suite
    from ablate.bench.suites import resolve_suite
    from ablate.grid.executors import SerialExecutor
    from ablate.grid.runner import run_grid
    from ablate.grid.spec import GridSpec

    events: list = []
    watched: list = []
    writing = ("open", "os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")

    def hook(event, args):
        if not watched or event not in writing or not args or not isinstance(args[0], (str, bytes, Path)):
            return
        target = args[1] if event == "os.rename" else args[0]  # a rename: where the file lands
        path = Path(target.decode() if isinstance(target, bytes) else target)
        if not str(path).startswith(str(watched[0])) or schema.SCRATCH in path.parts:
            return
        if event == "open" and not (isinstance(args[1], str) and set(args[1]) & set("wax+")
                                    or isinstance(args[2], int) and args[2] & 0o3):
            return  # opened for reading
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            frames.append(frame.f_globals.get("__name__", ""))
            frame = frame.f_back
        events.append((event, path.name, any(name.startswith("ablate.runs.") for name in frames)))

    def cell(config, features_path):  # a trained cell's record, without the training
        return {**config, "test_accuracy": 0.5, "status": "ok", "wall_time_s": 0.1, "curve_softmax_loss": [1.0]}

    sys.addaudithook(hook)  # stays for the process; inert once `watched` is emptied
    try:
        watched.append(tmp_path / "grid")
        run_grid(GridSpec(axes={"lambda": [0, 0.1], "epochs": [1]}), tmp_path / "grid", SerialExecutor(cell),
                 quiet=True)
        watched[0] = tmp_path / "bench"
        # a time budget already spent: every point is a row saying so, the folder is written all the same
        suite = resolve_suite("quick", torch.device("cpu"), modes=("forward",), batch=(16,), classes=(5,), dim=(4,))
        run_suite(replace(suite, numerics=None, train_step=None, time_budget_s=0.0), torch.device("cpu"),
                  tmp_path / "bench", progress=False)
    finally:
        watched.clear()
    assert {name for _, name, _ in events} >= {"run.json", "provenance.json", "grid.toml", "results.parquet",
                                               "bench.parquet", ".lock"}
    assert all(from_runs for _, _, from_runs in events), [e for e in events if not e[2]]
