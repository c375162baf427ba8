"""Grid specs: TOML parsing, --set parsing, expansion into cells, bundled grids, stable cell ids."""

import importlib.util
import os
import subprocess
import sys

import pytest

from ablate.grid import bundled_grids, cell_id, expand, load_spec, parse_set_option
from ablate.grid.spec import GridSpec
from ablate.loss import RULES, VARIANTS, available_variants
from ablate.train import CellConfig
from ablate.train.cell import resolve_device
from tests.support import ROOT, write_toml


@pytest.mark.parametrize("text, key, values", [
    ("lambda=0,0.001,1e-2", "lambda", [0, 0.001, 0.01]),
    ("variant=naive,gather", "variant", ["naive", "gather"]),
    (" seed = 3 ", "seed", [3]),
    ("data_dir=/data/fashion-mnist", "data_dir", ["/data/fashion-mnist"]),
    ("model=\"mlp\"", "model", ["mlp"]),
])
def test_set_option_parses_toml_scalars_and_bare_strings(text, key, values):
    assert parse_set_option(text) == (key, values)


@pytest.mark.parametrize("text", ["lambda", "=0,1", "lambda=", "lambda=0,,1"])
def test_set_option_refuses_malformed_text_and_shows_the_form(text):
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        parse_set_option(text)


def test_expand_is_the_cartesian_product_in_spec_order(tmp_path):
    spec = load_spec(write_toml(tmp_path, """
        [axes]
        lambda = [0, 0.1]
        seed = [0, 1, 2]
        epochs = 1
    """))
    cells = expand(spec)
    assert [(c["lambda"], c["seed"]) for c in cells] == [(0.0, 0), (0.0, 1), (0.0, 2), (0.1, 0), (0.1, 1), (0.1, 2)]
    assert all(c["epochs"] == 1 for c in cells)
    # Options not named keep CellConfig's defaults: each cell is a whole, resolved config.
    assert all(c == CellConfig.from_dict({"lambda": c["lambda"], "seed": c["seed"], "epochs": 1}).to_dict()
               for c in cells)


def test_also_tables_add_products_over_the_axes_without_duplicates(tmp_path):
    spec = load_spec(write_toml(tmp_path, """
        [axes]
        variant = "gather"
        lambda = [0.01, 1]
        seed = [0, 1]
        [[also]]
        variant = ["naive", "gather"]
        lambda = 1
    """))
    cells = [(c["variant"], c["lambda"], c["seed"]) for c in expand(spec)]
    # gather at lambda 1 is in both products: once only.
    assert cells == [("gather", 0.01, 0), ("gather", 0.01, 1), ("gather", 1.0, 0), ("gather", 1.0, 1),
                     ("naive", 1.0, 0), ("naive", 1.0, 1)]


def test_overrides_replace_an_axis_everywhere_it_is_named():
    spec = GridSpec(axes={"lambda": [0, 1], "seed": [0, 1, 2]}, also=({"variant": ["naive"], "lambda": [1]},))
    narrowed = spec.with_overrides({"lambda": [0.5], "seed": [7]})
    assert narrowed.axes == {"lambda": [0.5], "seed": [7]}
    assert narrowed.also == ({"variant": ["naive"], "lambda": [0.5]},)
    assert {(c["variant"], c["lambda"], c["seed"]) for c in expand(narrowed)} == {("gather", 0.5, 7), ("naive", 0.5, 7)}


def test_an_override_of_an_option_not_in_the_spec_adds_it_to_every_cell():
    spec = GridSpec(axes={"lambda": [0, 1]}).with_overrides({"epochs": [2], "alpha": [0.1, 0.9]})
    cells = expand(spec)
    assert len(cells) == 4 and {c["epochs"] for c in cells} == {2} and {c["alpha"] for c in cells} == {0.1, 0.9}


@pytest.mark.parametrize("axes, message", [
    ({"lamda": [0.1]}, r"unknown cell option\(s\) 'lamda'; expected keys among .*lambda"),
    ({"variant": ["fast"]}, "unknown variant 'fast'; expected one of naive, gather"),
    ({"epochs": [0]}, "epochs must be >= 1"),
])
def test_a_bad_key_or_value_is_named_with_what_was_expected(axes, message):
    with pytest.raises(ValueError, match=message):
        expand(GridSpec(axes=axes))


@pytest.mark.parametrize("text, message", [
    ("[axes\nlambda = 1", "not valid TOML"),
    ("[grid]\nlambda = 1", "unknown top-level key.*grid.*expected description, save_weights, axes, also"),
    ("description = 'x'", r"expected an \[axes\] table"),
    ("[axes]\nlambda = []", "lambda must be a value or a non-empty list"),
    ("[axes]\nlambda = [[0, 1]]", "lambda must be a value or a non-empty list"),
    ("save_weights = 'yes'\n[axes]\nlambda = 1", "save_weights must be true or false, got 'yes'"),
])
def test_a_malformed_spec_file_is_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_spec(write_toml(tmp_path, text))


def test_an_unknown_grid_name_lists_the_bundled_grids(tmp_path):
    with pytest.raises(ValueError, match="expected one of contest, default, fashion, losses, paper-mnist, variants"):
        load_spec("nonesuch")
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_the_resolved_toml_loads_back_to_the_same_cells(tmp_path):
    awkward_path = '/C:\\data\n"fashion"'  # a backslash, quotes and a newline must survive the round trip
    spec = load_spec("default").with_overrides({"epochs": [1], "seed": [4, 5], "lambda": [1e-5, 0.5],
                                                "dataset": ["fashion-mnist"], "data_dir": [awkward_path]})
    saved = tmp_path / "resolved.toml"
    saved.write_text(spec.to_toml())
    assert saved.read_text().startswith("# resolved grid from default with --set epochs=1 --set seed=4,5")
    reloaded = load_spec(saved)
    assert reloaded.axes["data_dir"] == [awkward_path] and reloaded.axes["lambda"] == [1e-5, 0.5]
    assert [cell_id(c) for c in expand(reloaded)] == [cell_id(c) for c in expand(spec)]


def test_bundled_grids_are_listed_with_descriptions_and_expand():
    grids = bundled_grids()
    assert set(grids) == {"contest", "default", "fashion", "losses", "paper-mnist", "variants"}
    for name, description in grids.items():
        assert description, name
        assert expand(load_spec(name)), name


def test_the_default_grid_is_what_make_ablation_promises():
    cells = expand(load_spec("default"))
    main = [c for c in cells if c["variant"] == "gather"]
    assert {c["dataset"] for c in cells} == {"digits"}
    assert sorted({c["lambda"] for c in main}) == [0, 0.001, 0.01, 0.1, 1]
    assert sorted({c["alpha"] for c in main}) == [0.1, 0.5, 1.0]
    assert {c["rule"] for c in main} == {"paper", "sgd"} and {c["seed"] for c in main} == set(range(10))
    assert len(main) == 5 * 3 * 2 * 10
    others = [c for c in cells if c["variant"] != "gather"]
    assert {c["variant"] for c in others} == {"naive", "compiled", "fused"}
    # Each variant's cells are also gather cells, so the report can compare them one to one.
    main_settings = {(c["lambda"], c["alpha"], c["rule"], c["seed"]) for c in main}
    assert all((c["lambda"], c["alpha"], c["rule"], c["seed"]) in main_settings for c in others)


def test_the_fashion_grid_runs_the_lambda_study_with_the_datasets_recipe():
    from ablate.data import recipe

    cells = expand(load_spec("fashion"))
    assert sorted({c["lambda"] for c in cells}) == [0, 0.001, 0.01, 0.1, 1] and len(cells) == 5 * 3
    for key, value in recipe("fashion-mnist").options().items():
        assert {c[key] for c in cells} == {value}, key


def test_paper_mnist_has_the_lambda_and_alpha_ablations():
    cells = expand(load_spec("paper-mnist"))
    assert {(c["dataset"], c["model"], c["feat_dim"]) for c in cells} == {("mnist5k", "lenetpp", 2)}
    at_half = {c["lambda"] for c in cells if c["alpha"] == 0.5}
    assert min(at_half) == 0 and max(at_half) == 1
    fixed_lambda = {c["alpha"] for c in cells if c["lambda"] == 0.1}
    assert min(fixed_lambda) == 0.01 and max(fixed_lambda) == 1


def test_the_variants_grid_runs_every_variant_available_here_and_every_rule_on_the_same_cells():
    cells = expand(load_spec("variants"))
    here = available_variants(resolve_device("auto"))
    by_setting = {}
    for c in cells:
        by_setting.setdefault((c["lambda"], c["seed"]), set()).add((c["variant"], c["rule"]))
    assert len(by_setting) == 4
    assert all(pairs == {(v, r) for v in here for r in RULES.names()} for pairs in by_setting.values())


def test_every_variant_stands_for_the_variants_available_on_each_cells_device(monkeypatch):
    spec = GridSpec(axes={"variant": ["*"], "device": ["cpu"], "seed": [0, 1]})
    assert spec.cell_count() == len(VARIANTS) * 2 and spec.size_text() == f"variant {len(VARIANTS)} x seed 2"
    cells = expand(spec)
    assert [(c["variant"], c["seed"]) for c in cells] == [(v, s) for s in (0, 1) for v in available_variants("cpu")]
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter makes the Triton kernels available on the CPU
    assert ("fused" in {c["variant"] for c in expand(spec)}) == (importlib.util.find_spec("triton") is not None)
    # "*" beside names: the names and the rest, each once
    named = expand(GridSpec(axes={"variant": ["naive", "*"], "device": ["cpu"]}))
    assert [c["variant"] for c in named] == ["naive", *(v for v in available_variants("cpu") if v != "naive")]


def test_every_variant_on_a_bad_device_names_the_device():
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected one of auto, cpu, cuda"):
        expand(GridSpec(axes={"variant": ["*"], "device": ["tpu"]}))


def test_cell_id_ignores_key_order_and_spelling_but_not_values():
    config = CellConfig.from_dict({"lambda": 1, "seed": 2}).to_dict()
    assert cell_id(config) == cell_id(dict(reversed(list(config.items()))))
    assert cell_id(config) == cell_id(CellConfig.from_dict({"lambda": 1.0, "seed": 2}).to_dict())
    changed = {cell_id({**config, key: value}) for key, value in
               [("lambda", 0.5), ("seed", 3), ("variant", "naive"), ("data_dir", "/x")]}
    assert len(changed) == 4 and cell_id(config) not in changed


def test_cell_id_is_the_same_in_another_process():
    # A rerun must find its cells: no per-process salt (such as Python's string hash) may enter the id.
    config = CellConfig.from_dict({"lambda": 0.01, "alpha": 0.5, "rule": "sgd", "seed": 1}).to_dict()
    code = ("from ablate.grid import cell_id; from ablate.train import CellConfig; "
            "print(cell_id(CellConfig.from_dict({'seed': 1, 'rule': 'sgd', 'alpha': 0.5, 'lambda': 0.01}).to_dict()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=ROOT)
    assert other.stdout.strip() == cell_id(config)


def test_save_weights_survives_the_resolved_grid(tmp_path):
    spec = load_spec(write_toml(tmp_path, "save_weights = true\n[axes]\nlambda = 1"))
    assert spec.save_weights and load_spec(write_toml(tmp_path, spec.to_toml(), "again.toml")).save_weights
