"""The layering of docs/layout.md holds (import-linter's contract in pyproject.toml), and no module
of ablate reaches itself through its imports (function-level imports count too)."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent



def _lint_imports() -> str:
    beside_python = Path(sys.executable).with_name("lint-imports")
    found = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports (import-linter) is not installed: `make install` installs the dev extras")
    return found


def test_the_layers_contract_holds():
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = out.stdout[out.stdout.find("Broken contracts"):] if "Broken contracts" in out.stdout else out.stdout
    assert out.returncode == 0, report + out.stderr


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every cycle closed by one direct import a -> b (b reaches a back), as the modules in import order from its
    first module by name, once each; shortest chains, so one tangle of modules may show as several cycles."""
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = (importer, *back[:-1])
                start = cycle.index(min(cycle))
                cycles.add(cycle[start:] + cycle[:start])
    return sorted(cycles)


def test_no_import_cycle_between_modules():
    cycles = import_cycles(grimp.build_graph("ablate", cache_dir=None))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join((*cycle, cycle[0])) for cycle in cycles)


def test_a_cycle_is_found_and_named(tmp_path, monkeypatch):
    package = tmp_path / "tangle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from tangle import b\n")
    (package / "b.py").write_text("def f():\n    from tangle import c\n")  # inside a function: still an import
    (package / "c.py").write_text("import tangle.a\n")
    (package / "d.py").write_text("import tangle.a\n")  # imports into the cycle, not part of it
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("tangle", cache_dir=None)) == [("tangle.a", "tangle.b", "tangle.c")]
