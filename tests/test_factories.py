"""A researcher's own model and dataset, defined in one file outside the package (and in a throwaway installed
package's entry points), trained by a grid, reported, their weights kept and reloaded; factories that cannot work
refused by name before any cell trains."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.data import DATASETS
from ablate.export.cli import export_command
from ablate.grid.cli import grid_command
from ablate.grid.spec import expand, load_spec
from ablate.models import MODELS
from ablate.report import build_report
from ablate.runs.features import read_features
from ablate.runs.schema import RunFolderError
from ablate.runs.weights import read_weights_header
from ablate.train import CellConfig, run_cell
from ablate.train.batches import cell_data
from ablate.train.cell import restore_cell
from ablate.train.evaluate import EVAL_BATCH, features_of
from ablate.train.probe import probe_model
from tests.support import write_toml

# A small convnet and a dataset of 8x8 images (the first 400 of scikit-learn's digits), in one file of the user's.
USER_FILE = '''
import numpy as np
import torch
from torch import nn


class SmallConvNet(nn.Module):
    """images (B, 1, 8, 8) -> features (B, feat_dim), logits (B, num_classes)"""

    def __init__(self, feat_dim, num_classes):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                   nn.Linear(4 * 4 * 4, feat_dim))
        self.logits = nn.Linear(feat_dim, num_classes)

    def forward(self, images):
        features = self.trunk(images)
        return features, self.logits(features)


def convnet(feat_dim, num_classes):
    return SmallConvNet(feat_dim, num_classes)


convnet.recipe = {"lr": 0.1, "batch_size": 32}


def images(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images[:400] / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(x, bunch.target[:400], test_size=0.25,
                                                        stratify=bunch.target[:400], random_state=seed)
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


images.recipe = {"epochs": 3}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y
        self.targets = y  # as torchvision's datasets: the validation split is stratified by them

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), int(self.y[i])


def streamed_images(seed):
    parts = images(seed)
    return {"train": Pairs(*parts["train"]), "test": Pairs(*parts["test"]), "num_classes": 10}


streamed_images.recipe = images.recipe


def three_outputs(feat_dim, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def labels_beyond(seed):
    parts = images(seed)
    x, y = parts["train"]
    return {"train": (x, y), "test": parts["test"], "num_classes": 5}
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user" / "mine.py"
    path.parent.mkdir()
    path.write_text(USER_FILE)
    return path


GRID = """
    description = "a convnet of the user's on the user's images"
    save_weights = true
    [axes]
    model = "{file}:convnet"
    dataset = "{file}:images"
    feat_dim = 4
    lambda = [0.0, 0.1]
    seed = [0, 1]
    """


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_grid_trains_the_users_model_on_the_users_data_keeps_the_weights_and_reports_it(user_file, tmp_path):
    grid = write_toml(tmp_path, GRID.format(file=user_file))
    run("grid", grid, "--out", tmp_path / "run", "--quiet")
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(results) == 4 and (results["status"] == "ok").all()
    assert set(results["model"]) == {f"{user_file}:convnet"} and set(results["dataset"]) == {f"{user_file}:images"}
    digest = MODELS.get(f"{user_file}:convnet").factory.digest
    assert set(results["model_digest"]) == set(results["dataset_digest"]) == {digest}  # one file holds both
    # the recipes: the dataset's epochs, the model's lr and batch size, under the grid's feat_dim
    assert set(results["epochs"]) == {3} and set(results["lr"]) == {0.1} and set(results["batch_size"]) == {32}
    assert (results["test_accuracy"] > 0.2).all()  # above chance (0.1): 0.34 to 0.61 measured after 3 epochs
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert f"model {user_file}:convnet ({user_file}, sha256 {digest})" in provenance["factories"]

    for cell in results["cell_id"]:  # the kept weights rebuild the model: the same test features, to the bit
        weights = tmp_path / "run" / "cells" / f"{cell}.safetensors"
        model, centers = restore_cell(weights)
        record = json.loads((tmp_path / "run" / "cells" / f"{cell}.json").read_text())
        data = cell_data(CellConfig.from_dict({k: record[k] for k in CellConfig().to_dict()}))
        features, _ = features_of(model, torch.tensor(data.test().x).split(EVAL_BATCH))
        kept = read_features(tmp_path / "run" / "cells" / f"{cell}.npz")
        np.testing.assert_array_equal(features, kept["features"])
        np.testing.assert_array_equal(centers.numpy(), kept["centers"])
        assert {k for k in read_weights_header(weights).shapes if k.startswith("head.")} == set()  # its own logits

    page = build_report([tmp_path / "run"], tmp_path / "report.html", progress=False).read_text()
    assert "mine.py:convnet" in page and "mine.py:images" in page


def test_a_resumed_grid_never_rewrites_kept_weights_and_an_edited_model_reruns_its_cells(user_file, tmp_path):
    grid = write_toml(tmp_path, GRID.format(file=user_file).replace("[0.0, 0.1]", "0.1").replace("[0, 1]", "0"))
    run("grid", grid, "--out", tmp_path / "run", "--quiet")
    (weights,) = (tmp_path / "run" / "cells").glob("*.safetensors")
    before = weights.stat().st_mtime_ns, weights.read_bytes()
    output = run("grid", grid, "--out", tmp_path / "run")
    assert "1 finished earlier (skipped)" in output
    assert (weights.stat().st_mtime_ns, weights.read_bytes()) == before

    user_file.write_text(USER_FILE.replace("nn.ReLU()", "nn.Tanh()"))  # an edited model: another digest, another id
    output = run("grid", grid, "--out", tmp_path / "run")
    assert "1 to run" in output and len(list((tmp_path / "run" / "cells").glob("*.safetensors"))) == 2
    assert (weights.stat().st_mtime_ns, weights.read_bytes()) == before


def test_export_writes_a_cells_weights_where_asked_and_names_a_cell_without_them(user_file, tmp_path):
    grid = write_toml(tmp_path, GRID.format(file=user_file).replace("[0.0, 0.1]", "0.1").replace("[0, 1]", "0"))
    run("grid", grid, "--out", tmp_path / "run", "--quiet")
    (cell,) = [p.stem for p in (tmp_path / "run" / "cells").glob("*.safetensors")]
    run("export", tmp_path / "run", "--cell", cell, "--out", tmp_path / "exported")
    assert (tmp_path / "exported" / f"{cell}.safetensors").read_bytes() == (
        tmp_path / "run" / "cells" / f"{cell}.safetensors").read_bytes()
    assert json.loads((tmp_path / "exported" / f"{cell}.json").read_text())["cell_id"] == cell

    (tmp_path / "run" / "cells" / f"{cell}.safetensors").unlink()
    refused = CliRunner().invoke(export_command, [str(tmp_path / "run"), "--cell", cell, "--out",
                                                  str(tmp_path / "again")])
    assert refused.exit_code == 1 and f"cell {cell} kept no weights" in refused.output
    inside = CliRunner().invoke(export_command, [str(tmp_path / "run"), "--cell", "0" * 12, "--out",
                                                 str(tmp_path / "run" / "x")])
    assert inside.exit_code == 1 and "no cell 000000000000" in inside.output


def test_a_streamed_dataset_trains_as_its_arrays_do_through_a_dataloader_worker(user_file):
    """A factory returning torch Datasets streams through a DataLoader (one worker process here); the batches are
    those the arrays give from memory, so the record's metrics are the same."""
    options = {"model": f"{user_file}:convnet", "feat_dim": 4, "seed": 3, "device": "cpu"}
    in_memory = run_cell(CellConfig(dataset=f"{user_file}:images", **options))
    streamed = run_cell(CellConfig(dataset=f"{user_file}:streamed_images", **options), loader_workers=1)
    assert not DATASETS.get(f"{user_file}:streamed_images").in_memory
    for key in ("test_accuracy", "cosine_map_at_r", "curve_softmax_loss", "curve_center_loss"):
        assert streamed[key] == pytest.approx(in_memory[key], rel=1e-6), key


def test_a_factory_giving_the_wrong_shapes_is_refused_by_name_before_the_run_folder_is_touched(user_file, tmp_path):
    grid = write_toml(tmp_path, GRID.format(file=user_file).replace(":convnet", ":three_outputs"))
    result = CliRunner().invoke(grid_command, [str(grid), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert f"model {user_file}:three_outputs ({user_file}, sha256 " in result.output
    assert "returned 1 output(s) of shape (2, 3)" in result.output and "expected (features, logits)" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("dataset, model, expected", [
    (":labels_beyond", ":convnet", "its train labels must lie in [0, 5) (num_classes 5); found 9"),
    (":images", ":nowhere", "model factory {file}:nowhere: {file} has no attribute 'nowhere'"),
    (":images", "/no/such/file.py:convnet", "no such file '/no/such/file.py'"),
])
def test_a_factory_that_cannot_load_or_gives_bad_labels_is_named_before_anything_runs(user_file, tmp_path, dataset,
                                                                                       model, expected):
    model = model if model.startswith("/") else f"{user_file}{model}"
    spec = load_spec(write_toml(tmp_path, GRID.format(file=user_file).replace(f"{user_file}:images",
                                                                              f"{user_file}{dataset}")
                                .replace(f"{user_file}:convnet", model)))
    with pytest.raises(ValueError) as error:
        expand(spec)
    assert expected.format(file=user_file) in str(error.value)


def test_a_factory_that_fails_at_import_is_named_with_its_file(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise RuntimeError('no GPU driver here')\n")
    result = CliRunner().invoke(main, ["train", "--model", f"{broken}:build", "--no-progress"])
    assert result.exit_code != 0
    assert f"model factory {broken}:build: importing {broken} failed: RuntimeError: no GPU driver here" in (
        result.output)


def test_a_model_that_cannot_run_on_the_meta_device_is_sized_on_the_cpu(tmp_path):
    """A forward that reads a tensor's value (.item()) cannot run on meta: the memory estimate builds the model on
    the CPU and runs two examples, scaling the activations to the batch."""
    path = tmp_path / "valued.py"
    path.write_text(textwrap.dedent('''
        from torch import nn

        class Valued(nn.Module):
            def __init__(self, feat_dim, num_classes):
                super().__init__()
                self.embed, self.classifier = nn.Linear(64, feat_dim), nn.Linear(feat_dim, num_classes)

            def forward(self, x):
                features = self.embed(x.flatten(1))
                if features.abs().max().item() > 1e6:
                    raise ValueError("features blew up")
                return features, self.classifier(features)

        def valued(feat_dim, num_classes):
            return Valued(feat_dim, num_classes)
        '''))
    config = CellConfig(model=f"{path}:valued", feat_dim=3, batch_size=64, device="cpu")
    probe = probe_model(config, (1, 8, 8), 10, 64)
    assert probe.device == "cpu" and probe.parameters == 64 * 3 + 3 + 3 * 10 + 10
    assert probe.outputs == ((2, 3), (2, 10))
    assert probe.activations == 64 * (3 + 10)  # the two leaf layers' outputs, per example, times the batch


# A throwaway installed package: a folder on sys.path holding its module and a .dist-info with entry_points.txt.
PLUGIN_MODULE = USER_FILE + '''

def digits_subset(seed):
    return images(seed)


digits_subset.recipe = images.recipe
'''
ENTRY_POINTS = """
[ablate.models]
tinyconv = ablate_user_plugin:convnet
[ablate.datasets]
digits400 = ablate_user_plugin:digits_subset
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "ablate_user_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ablate-user-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "ablate_user_plugin.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(site))
    for registry in (MODELS, DATASETS):
        monkeypatch.setattr(registry, "_plugins_loaded", False)  # load the entry points again, these included
    yield site
    for registry, name in ((MODELS, "tinyconv"), (DATASETS, "digits400")):
        if name in registry.names():
            registry.unregister(name)
    monkeypatch.delitem(__import__("sys").modules, "ablate_user_plugin", raising=False)


def test_a_grid_trains_a_model_and_dataset_an_installed_package_registers(installed_plugin, tmp_path):
    grid = write_toml(tmp_path, """
        [axes]
        model = "tinyconv"
        dataset = "digits400"
        feat_dim = 4
        lambda = 0.1
        """)
    run("grid", grid, "--out", tmp_path / "run", "--quiet", "--save-weights")
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    assert record["status"] == "ok" and record["model"] == "tinyconv" and record["dataset"] == "digits400"
    source = installed_plugin / "ablate_user_plugin.py"
    assert record["model_digest"] == MODELS.get("tinyconv").factory.digest == DATASETS.get("digits400").factory.digest
    assert MODELS.get("tinyconv").factory.describe() == (
        f"ablate_user_plugin:convnet (ablate-user-plugin, {source}, sha256 {record['model_digest']})")
    assert record["epochs"] == 3 and record["lr"] == 0.1  # the recipes the factories declare
    model, _ = restore_cell(tmp_path / "run" / "cells" / f"{record['cell_id']}.safetensors")
    assert type(model).__name__ == "SmallConvNet"


def test_registered_cells_keep_the_ids_they_had_before_factories():
    """The digests are left out of a cell's id where they are None: a bundled grid's cells keep their ids (and so
    their finished records)."""
    from ablate.runs.schema import cell_id

    config = CellConfig().to_dict()
    assert config["model_digest"] is None and config["dataset_digest"] is None
    assert cell_id(config) == cell_id({k: v for k, v in config.items() if not k.endswith("_digest")})


def test_the_head_of_a_factory_model_without_a_classifier_is_attached_and_kept(user_file, tmp_path):
    """A pml head on a model with no `classifier`: its logits come from the head, and the kept weights hold it."""
    config = CellConfig(model=f"{user_file}:convnet", dataset=f"{user_file}:images", head="cosface", feat_dim=4,
                        lambda_=0.0, lr=0.01, device="cpu")
    record = run_cell(config, weights_path=tmp_path / "w.safetensors", features_path=tmp_path / "f.npz")
    assert record["status"] == "ok"
    assert {k for k in read_weights_header(tmp_path / "w.safetensors").shapes if k.startswith("head.")} == {
        "head.loss.W"}
    model, _ = restore_cell(tmp_path / "w.safetensors")
    features, predictions = features_of(model, torch.tensor(cell_data(config).test().x).split(EVAL_BATCH))
    np.testing.assert_array_equal(predictions, read_features(tmp_path / "f.npz")["predictions"])


def test_a_weights_file_that_is_not_a_cells_is_refused_by_name(tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(RunFolderError, match="bogus.safetensors: not a readable safetensors file"):
        read_weights_header(bogus)


def test_a_factorys_data_splits_three_ways_as_a_bundled_datasets_does(user_file):
    """Validation is carved out of the factory's train part (val_fraction of it, stratified, drawn by the split seed),
    the test part is the factory's own; streamed and in memory carve the same items; a validation part the factory
    gives is its validation split."""
    factory_parts = {}

    def parts(dataset, split_seed, val_fraction=0.2):
        config = CellConfig(dataset=f"{user_file}:{dataset}", model=f"{user_file}:convnet", feat_dim=4, seed=0,
                            split_seed=split_seed, val_fraction=val_fraction)
        if not factory_parts:
            factory_parts.update(DATASETS.get(config.dataset).factory.function(seed=split_seed))
        return cell_data(config)

    data = parts("images", split_seed=5)
    (x_train, y_train), (x_test, y_test) = factory_parts["train"], factory_parts["test"]
    assert len(data.validation) == 60 and len(data.train) == 240  # 0.2 of the factory's 300 training images
    assert np.array_equal(data.test().x, x_test) and np.array_equal(data.test().y, y_test)
    carved = np.concatenate([data.train.x, data.validation.x]).reshape(300, -1)
    assert sorted(map(bytes, carved)) == sorted(map(bytes, x_train.reshape(300, -1)))  # a partition of train
    per_class = np.bincount(y_train, minlength=10)
    assert (np.abs(np.bincount(data.validation.y, minlength=10) - 0.2 * per_class) <= 1).all()  # stratified
    assert not np.array_equal(parts("images", split_seed=6).validation.x, data.validation.x)  # drawn by the seed

    streamed = parts("streamed_images", split_seed=5)
    assert np.array_equal(np.stack([streamed.validation[i][0].numpy() for i in range(60)]), data.validation.x)
    assert len(parts("images", split_seed=5, val_fraction=0).validation) == 0


def test_a_validation_part_the_factory_gives_is_the_validation_split(tmp_path):
    path = tmp_path / "given.py"
    path.write_text(textwrap.dedent('''
        import numpy as np

        def three_parts():
            rng = np.random.default_rng(0)
            part = lambda n: (rng.normal(size=(n, 6)).astype(np.float32), np.arange(n) % 3)
            return {"train": part(30), "validation": part(9), "test": part(12)}
    '''))
    config = CellConfig(dataset=f"{path}:three_parts", feat_dim=2, epochs=1)
    data = cell_data(config)
    given = DATASETS.get(config.dataset).factory.function()
    assert np.array_equal(data.validation.x, given["validation"][0]) and len(data.train) == 30
    record = run_cell(config)
    assert record["status"] == "ok" and record["val_test_accuracy"] is not None


def test_ablate_tune_tunes_a_factory_model_on_a_factory_dataset_without_reading_its_test_part(user_file, tmp_path,
                                                                                               monkeypatch):
    from ablate.data.dataset import Splits
    from ablate.grid.executors import SerialExecutor
    from ablate.grid.spec import GridSpec
    from ablate.tune.search import run_tune
    from ablate.tune.settings import TuneSettings
    from ablate.tune.space import plan_objectives

    reads = []
    original_test = Splits.test
    monkeypatch.setattr(Splits, "test", lambda self: reads.append(self.name) or original_test(self))
    spec = GridSpec(axes={"dataset": [f"{user_file}:images"], "model": [f"{user_file}:convnet"], "epochs": [1],
                          "feat_dim": [4], "lambda": [0.1]})
    settings = TuneSettings(budget=2, seeds=1, prune_after_trials=1, prune_after_epochs=1)
    outcome = run_tune(spec, plan_objectives(spec, settings), settings, tmp_path / "run", SerialExecutor(), quiet=True)
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    trials = [r for r in records if not r["scored_on_test"]]
    finals = [r for r in records if r["scored_on_test"]]
    assert len(trials) == 2 and len(finals) == 1 and len(outcome.finals) == 1
    assert len(reads) == 1  # the final seed's cell alone read the test part
    assert {r["model_digest"] for r in records} == {MODELS.get(f"{user_file}:convnet").factory.digest}
    assert all(r["val_test_accuracy"] is not None for r in trials if r["status"] == "ok")
