"""Text written into our own files is escaped for the format (issue: hostile inputs, round two, item 3): every
code point 0-31 and 127, and non-BMP characters, go through each value and name that reaches a TOML, JSON or CSV
file we write, and the file is read back with the format's own parser."""

import json
import tomllib

import pandas as pd
import pytest

from ablate.grid.spec import expand, load_spec, parse_set_option
from ablate.io import atomic_write_json, atomic_write_table
from ablate.runs import readers, schema

CONTROLS = "".join(map(chr, range(32))) + chr(127)
NON_BMP = "\U0001F600\U00010348"
HOSTILE = f"a{CONTROLS}b{NON_BMP}\"'\\#[]=,"
# A file name holds any byte but NUL and "/".
FILE_NAME = "".join(c for c in CONTROLS if c not in "\0") + NON_BMP + ".toml"
HOSTILE_PATH = "/" + HOSTILE.replace("\0", "")  # absolute, so that resolving it keeps it as it is


def test_a_grid_toml_holds_every_character_of_its_file_name_set_values_and_description(tmp_path):
    path = tmp_path / FILE_NAME
    description = json.dumps(HOSTILE, ensure_ascii=False).replace("\x7f", "\\u007f")  # valid TOML as well
    path.write_text(f"description = {description}\n[axes]\nseed = [0, 1]\n",
                    encoding="utf-8")
    key, values = parse_set_option("data_dir=x\x01\x1b\x7fy" + NON_BMP)
    spec = load_spec(path).with_overrides({key: values, "variant": ["gather"], "dataset": ["fashion-mnist"]})
    spec = spec.with_overrides({"data_dir": [HOSTILE_PATH]})
    written = tmp_path / "run" / schema.GRID_SPEC
    written.parent.mkdir()
    written.write_text(spec.to_toml(), encoding="utf-8")
    document = tomllib.loads(written.read_text(encoding="utf-8"))  # the format's own parser
    assert document["description"] == HOSTILE and document["axes"]["data_dir"] == HOSTILE_PATH
    assert "resolved grid from" in written.read_text() and "\\x01\\x02\\x03" in written.read_text()  # shown escaped
    # and the run folder's reader keeps filtering cells by it
    products = readers.read_grid_axes(written.parent)
    assert all(readers.in_grid(config, products) for config in expand(spec))


@pytest.mark.parametrize("name, value", [(HOSTILE, HOSTILE), ("plain", HOSTILE), (HOSTILE, 1.5)])
def test_json_we_write_reads_back_exactly(tmp_path, name, value):
    path = tmp_path / "record.json"
    atomic_write_json(path, {name: value, "nested": [value]})
    assert readers.read_json(path) == {name: value, "nested": [value]}
    assert json.loads(path.read_text(encoding="utf-8")) == {name: value, "nested": [value]}


def test_csv_and_parquet_we_write_read_back_exactly(tmp_path):
    table = pd.DataFrame({HOSTILE: [HOSTILE, "plain", CONTROLS], "n": [1, 2, 3]})
    atomic_write_table(table, tmp_path / "table")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "table.parquet"), table)
    back = pd.read_csv(tmp_path / "table.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(back, table)


def test_an_html_report_of_a_run_holding_every_character_is_valid_and_shows_them(tmp_path):
    from html.parser import HTMLParser

    from ablate.report.build import build_report
    from tests.support.fixture_runs import make_grid_run

    hostile = HOSTILE + "<b>&\u202e\u2066"  # and bidi controls, which would reorder the page's text
    run = make_grid_run(tmp_path / "run", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0,),
                        data_dirs=(hostile,))
    # and a lone surrogate, which JSON can hold and UTF-8 cannot, in the provenance
    atomic_write_json(run / "provenance.json", {"host": hostile + "\udcff", "command": hostile})
    page = build_report([run], tmp_path / "r.html", progress=False).read_bytes().decode("utf-8")  # strict UTF-8
    assert not any(ord(c) < 32 and c not in "\t\n\f\r" or ord(c) == 127 for c in page)
    assert "\u202e" not in page and "\u2066" not in page

    class Text(HTMLParser):
        text, tags = [], []

        def handle_data(self, data):
            self.text.append(data)

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    parser = Text()
    parser.feed(page)
    text = "".join(parser.text)
    assert "\\x01\\x02" in text and "\\x7f" in text and NON_BMP in text and "<b>&" in text and "\\udcff" in text
    assert "\\u202e\\u2066" in text
    assert "b" not in parser.tags  # the value's markup stayed text
