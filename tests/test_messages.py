"""Every message of every command is bounded and escaped, and no traceback escapes (issue: hostile inputs, round
three, item 1): generated members of the class (huge tables of keys and products, megabyte keys and values, many
options, long paths, bidi and ANSI characters in every echoed value) through each command, in process."""

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.messages import bounded, listed
from tests.support import assert_bounded_output

# A value that would reorder or recolour a terminal: right-to-left override, an ANSI colour, CR, BEL, an isolate.
HOSTILE = "\u202eevil\x1b[31mred\x1b[0m\r\x07\u2066x\u2069\x9b"
MEGABYTE = 2**20


def _spec(tmp_path, text: str, name: str = "grid.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# (command, build(tmp_path) -> args, what the message must say): each member is one hostile input.
MEMBERS = {
    "grid: 100,000 keys in a table": (
        lambda t: ["grid", _spec(t, "[axes]\n" + "".join(f"k{i} = 1\n" for i in range(100_000))), "--out",
                   str(t / "r")],
        "and 99,995 more (100,000 in all)"),
    "grid: 200,000 [[also]] tables": (
        lambda t: ["grid", _spec(t, "[axes]\nepochs = 1\n" + "[[also]]\nseed = 1\n" * 200_000), "--out", str(t / "r")],
        "200,001 cells"),
    "grid: a 1 MB key": (
        lambda t: ["grid", _spec(t, f'[axes]\n"{"k" * MEGABYTE}" = 1\n'), "--out", str(t / "r")], "characters)"),
    "grid: a 1 MB value": (
        lambda t: ["grid", _spec(t, f'[axes]\nvariant = "{"v" * MEGABYTE}"\n'), "--out", str(t / "r")],
        "characters)"),
    "grid: 10,000 --set options": (
        lambda t: ["grid", *[f"--set=k{i}=1" for i in range(10_000)], "--out", str(t / "r")],
        "and 9,995 more (10,000 in all)"),
    "grid: a 1 MB --set value": (
        lambda t: ["grid", "--set", "variant=" + "v" * MEGABYTE, "--out", str(t / "r")], "characters)"),
    "grid: a 1 MB grid path": (lambda t: ["grid", "g" * MEGABYTE + ".toml", "--out", str(t / "r")], "characters)"),
    "grid: a 100,000-character --out": (
        lambda t: ["grid", "--set", "epochs=1", "--out", str(t / ("o" * 100_000))], "ENAMETOOLONG"),
    "grid: bidi and ANSI in the grid's name": (lambda t: ["grid", HOSTILE + ".toml", "--out", str(t / "r")],
                                               "\\u202eevil"),
    "grid: bidi and ANSI in a --set key": (lambda t: ["grid", "--set", HOSTILE + "=1", "--out", str(t / "r")],
                                           "\\u202eevil"),
    "grid: bidi and ANSI in --out": (lambda t: ["grid", "--set", "epochs=1", "--out", "/dev/null/" + HOSTILE],
                                     "\\u202eevil"),
    "train: bidi and ANSI in --device": (lambda t: ["train", "--device", HOSTILE], "\\u202eevil"),
    "train: a 1 MB --variant": (lambda t: ["train", "--variant", "v" * MEGABYTE], "characters)"),
    "train: a 100,000-character --out": (lambda t: ["train", "--out", str(t / ("o" * 100_000))], "ENAMETOOLONG"),
    "train: bidi and ANSI in --data-dir": (
        lambda t: ["train", "--dataset", "fashion-mnist", "--data-dir", str(t / HOSTILE), "--no-progress"],
        "\\u202eevil"),
    "bench run: bidi and ANSI in --variants": (
        lambda t: ["bench", "run", "--variants", HOSTILE, "--out", str(t / "b")], "\\u202eevil"),
    "bench run: a 1 MB --dtype": (lambda t: ["bench", "run", "--dtype", "d" * MEGABYTE, "--out", str(t / "b")],
                                  "characters)"),
    "bench run: a 100,000-character --out": (lambda t: ["bench", "run", "--out", str(t / ("o" * 100_000))],
                                             "ENAMETOOLONG"),
    "bench world: bidi and ANSI in --mode": (
        lambda t: ["bench", "world", "--world", "1", "--mode", HOSTILE, "--out", str(t / "w")], "\\u202eevil"),
    "gate run: bidi and ANSI in --case": (lambda t: ["gate", "run", "--case", HOSTILE], "\\u202eevil"),
    "gate run: a 1 MB --repo": (lambda t: ["gate", "run", "--repo", "r" * MEGABYTE], "characters)"),
    "report: bidi and ANSI in a run folder's name": (lambda t: ["report", str(t / HOSTILE), "--out", str(t / "r.html")],
                                                     "\\u202eevil"),
    "report: 10,000 run folders": (lambda t: ["report", *[str(t / f"run{i}") for i in range(10_000)], "--out",
                                              str(t / "r.html")], "does not exist"),
    "report: a 1 MB run folder name": (lambda t: ["report", "r" * MEGABYTE, "--out", str(t / "r.html")],
                                       "characters)"),
    "compare: bidi and ANSI in a run folder's name": (lambda t: ["compare", str(t / HOSTILE), str(t)], "\\u202eevil"),
    "compare: a 100,000-character run folder": (lambda t: ["compare", str(t / ("o" * 100_000)), str(t)],
                                                "characters)"),
    "variants: bidi and ANSI in --device": (lambda t: ["variants", "--device", HOSTILE], "\\u202eevil"),
    "check: bidi and ANSI in its target": (lambda t: ["check", HOSTILE + ":Loss"], "\\u202eevil"),
}


@pytest.mark.parametrize("member", MEMBERS)
def test_every_message_is_bounded_and_escaped(tmp_path, member):
    build, expected = MEMBERS[member]
    result = CliRunner().invoke(main, build(tmp_path))
    assert result.exit_code not in (0, None) and isinstance(result.exception, SystemExit), result.output[-3000:]
    assert_bounded_output(result.output)
    assert expected in result.output, result.output[-3000:]


@pytest.mark.parametrize("items, expected", [
    (range(3), "0, 1, 2"),
    (range(6), "0, 1, 2, 3, 4 and 1 more (6 in all)"),
    (range(100_000), "0, 1, 2, 3, 4 and 99,995 more (100,000 in all)"),
])
def test_a_list_in_a_message_shows_its_first_items_and_a_total(items, expected):
    assert listed(items) == expected


def test_a_message_is_cut_by_line_and_by_length_saying_how_much():
    text = "\n".join(["x" * 5000] + ["line"] * 100)
    cut = bounded(text, max_line=100, max_lines=10).splitlines()
    assert cut[0] == "x" * 67 + "... (4,900 more characters) ..." + "x" * 33
    assert cut[-1] == "... (91 more lines)" and len(cut) == 11


def test_an_unexpected_error_is_one_line_naming_its_type_and_place(monkeypatch):
    import ablate.runs.loading

    def broken(path):
        raise TypeError("\u202eboom")

    monkeypatch.setattr(ablate.runs.loading, "load_run", broken)
    result = CliRunner().invoke(main, ["compare", "a", "b"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert_bounded_output(result.output)
    assert "internal error (TypeError at ablate/compare.py:" in result.output  # the innermost frame of ablate
    assert "\\u202eboom" in result.output
