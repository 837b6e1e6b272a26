"""Data sources named by URI and their tf.data pipelines."""

import numpy as np
import pytest
import tensorflow as tf
from image_files import write_folder
from sklearn.datasets import load_digits

from kerazoo.data import load_data
from kerazoo.data.pipeline import feature_pipeline
from kerazoo.data.pipeline import image_pipeline
from kerazoo.recipes import Augment

OVERALL = np.bincount(load_digits().target) / 1797


def test_digits_splits_are_fixed_and_stratified():
    data = load_data("digits")
    assert data.sizes == {"train": 1257, "validation": 270, "test": 270}
    again = load_data("digits")
    for split in data.splits:
        a = data.splits[split].labels
        b = again.splits[split].labels
        np.testing.assert_array_equal(a, b)
        # Stratified: each split has the classes in the dataset's proportions.
        shares = np.bincount(a) / len(a)
        np.testing.assert_allclose(shares, OVERALL, atol=0.006)


def test_digits_shots_and_invert():
    data = load_data("digits?shots=3&invert=true", seed=1)
    assert np.bincount(data.splits["train"].labels).tolist() == [3] * 10
    plain = load_data("digits?shots=3", seed=1)
    x_inv = next(iter(data.dataset("train")))[0].numpy()
    x = next(iter(plain.dataset("train")))[0].numpy()
    np.testing.assert_array_equal(x_inv, 255 - x)
    with pytest.raises(ValueError, match="has only"):
        load_data("digits?shots=500")


def test_pipeline_resizes_to_rgb_batches_and_augments():
    data = load_data("digits?shots=4")
    ds = image_pipeline(
        data,
        "train",
        (24, 20),
        8,
        training=True,
        augment=Augment(rotation=0.1, zoom=0.1),
    )
    images, labels = next(iter(ds))
    assert images.shape == (8, 24, 20, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32
    assert float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 255


def test_feature_pipeline_shuffles_as_the_image_pipeline_does():
    """The head trained on cached features sees the images' order."""
    data = load_data("digits?shots=5")
    images = image_pipeline(data, "train", (8, 8), 7, training=True, seed=3)
    labels = data.splits["train"].labels
    features = feature_pipeline(
        np.arange(50.0)[:, None], labels, 7, training=True, seed=3
    )
    for _ in range(2):  # every epoch, reshuffled the same way
        ya = np.concatenate([y for _, y in images.as_numpy_iterator()])
        xb, yb = zip(*features.as_numpy_iterator(), strict=True)
        np.testing.assert_array_equal(ya, np.concatenate(yb))
        order = np.concatenate(xb)[:, 0].astype(int)
        np.testing.assert_array_equal(labels[order], ya)
        assert not np.array_equal(order, np.arange(50))


def test_folder_source_splits_per_class(tmp_path):
    write_folder(tmp_path, {"cat": 10, "dog": 10})
    data = load_data(f"folder:{tmp_path}?validation=0.2&test=0.2", seed=0)
    assert data.class_names == ["cat", "dog"]
    assert data.sizes == {"train": 12, "validation": 4, "test": 4}
    assert data.counts["train"] == [6, 6]
    images, labels = next(iter(image_pipeline(data, "train", (16, 16), 12)))
    assert images.shape == (12, 16, 16, 3)
    assert sorted(labels.numpy().tolist()) == [0] * 6 + [1] * 6


def test_folder_source_empty_class_is_an_error(tmp_path):
    write_folder(tmp_path, {"cat": 6, "dog": 0})
    (tmp_path / "dog" / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match="class 'dog'.*no image file"):
        load_data(f"folder:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="no folder"):
        load_data(f"folder:{tmp_path / 'missing'}")


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = load_data("tfds:tf_flowers", data_dir=None)
        assert data.class_names[:2] == ["dandelion", "daisy"]
        assert set(data.splits) == {"train", "validation", "test"}
        images, _ = next(iter(image_pipeline(data, "train", (32, 32), 4)))
        assert images.shape == (4, 32, 32, 3)
        custom = load_data(
            "tfds:tf_flowers?train=train[:50%]&validation=train[50%:]&test=train[50%:]"
        )
        assert set(custom.splits) == {"train", "validation", "test"}
