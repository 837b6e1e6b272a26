"""Augmentation and label mixing in the pipeline: each augmentation changes the
images and keeps their shape, dtype and 0-255 range; MixUp and CutMix give soft
labels that sum to 1, and a batch gets one of the two."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerazoo.data.pipeline as pipeline
from kerazoo.data import ImageData
from kerazoo.data.pipeline import Pipelines
from kerazoo.data.pipeline import RandomResizedCrop
from kerazoo.data.pipeline import Retraced
from kerazoo.data.pipeline import feature_pipeline
from kerazoo.data.split import ArraySplit
from kerazoo.recipes import Augment
from kerazoo.recipes import CutMix
from kerazoo.recipes import MixUp

SIZE = (32, 32)
CLASSES = 5


def colour_data(n=48, seed=0):
    """Smooth colour images (gradients in random colours), so that colour,
    saturation and hue changes show, and no two pixels agree by chance."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, SIZE[0])
    images = []
    for _ in range(n):
        a, b = rng.uniform(0, 255, (2, 3))
        t = (
            ramp[:, None] * rng.uniform(0.2, 1) + ramp[None, :] * rng.uniform(0.2, 1)
        ) / 2
        noise = rng.uniform(-8, 8, (*SIZE, 3))
        images.append(np.clip(a + (b - a) * t[..., None] + noise, 0, 255))
    images = np.asarray(images, np.uint8)
    labels = np.arange(n) % CLASSES
    split = ArraySplit(images, labels)
    return ImageData("arrays", [f"c{i}" for i in range(CLASSES)], {"train": split})


def first_batch(augment=None, seed=3, **kwargs):
    pipelines = Pipelines(colour_data(), SIZE)
    dataset = pipelines.dataset(
        "train", 16, training=True, augment=augment, seed=seed, **kwargs
    )
    x, y = next(iter(dataset))
    return x.numpy(), y.numpy()


@pytest.mark.parametrize(
    "augment",
    [
        {"random_resized_crop": {"scale": [0.3, 0.8]}},
        {"rand_augment": {"magnitude": 0.3, "layers": 2}},
        {"aug_mix": True},
        {"random_erasing": 1.0},
        {"random_erasing": {"probability": 1.0, "fill": 0}},
        {"color_jitter": {"brightness": 0.3}},
        {"color_jitter": {"contrast": 0.5}},
        {"color_jitter": {"saturation": 0.8}},
        {"color_jitter": {"hue": 0.2}},
    ],
    ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()),
)
def test_each_augmentation_changes_images_and_keeps_shape_dtype_range(
    augment, monkeypatch
):
    # Two traces of AugMix instead of eight: the test needs one to change images.
    monkeypatch.setattr(pipeline, "AUGMIX_VARIANTS", 2)
    plain, labels = first_batch()
    x, y = first_batch(Augment.model_validate(augment))
    np.testing.assert_array_equal(y, labels)  # the same images, in the same order
    assert x.shape == (16, *SIZE, 3) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 255
    changed = np.abs(x - plain).reshape(16, -1).max(axis=1) > 1
    assert changed.sum() >= 4, changed


def test_random_resized_crop_of_the_whole_image_is_the_image():
    images = tf.constant(colour_data().splits["train"].images[:6], "float32")
    whole = RandomResizedCrop(scale=(1, 1), ratio=(1, 1), seed=0)
    np.testing.assert_allclose(whole(images).numpy(), images.numpy(), atol=1e-3)


def test_random_resized_crop_zooms_into_a_part():
    """A crop of a quarter of the area, resized: its values come from that part
    (within the image's own range) and neighbouring pixels differ less."""
    images = tf.constant(colour_data().splits["train"].images[:8], "float32")
    crop = RandomResizedCrop(scale=(0.25, 0.25), ratio=(1, 1), seed=1)
    out = crop(images).numpy()
    source = images.numpy()
    assert out.shape == source.shape
    for a, b in zip(out, source, strict=True):
        assert b.min() - 1e-3 <= a.min() and a.max() <= b.max() + 1e-3
    roughness = lambda x: np.abs(np.diff(x, axis=2)).mean()  # noqa: E731
    assert roughness(out) < 0.7 * roughness(source)


def test_no_try_fitting_falls_back_to_the_whole_image_cut_to_the_ratio():
    images = tf.constant(colour_data().splits["train"].images[:2], "float32")
    # Ratio 4 on a square: a crop 2x as wide as the image at area 1: none fits.
    crop = RandomResizedCrop(scale=(1, 1), ratio=(4, 4), seed=0)
    out = crop(images).numpy()
    # The centre band of height 8 (32 / 4), stretched: rows of the output come
    # from rows 12-19 of the image.
    band = images.numpy()[:, 12:20]
    assert out.min() >= band.min() - 1e-3 and out.max() <= band.max() + 1e-3


def test_retraced_runs_a_different_trace_per_batch():
    """A layer whose choice is made in Python when traced (as Keras's AugMix
    does) gets a fresh choice in each of the traces, one drawn per batch."""

    class TraceCounter:
        name = "counter"
        traces = 0

        def __call__(self, x, training=True):
            TraceCounter.traces += 1
            return x * 0 + TraceCounter.traces

    wrapped = Retraced(TraceCounter(), 4, seed=0)
    batches = tf.data.Dataset.from_tensors(tf.zeros((2, 4, 4, 3))).repeat(24)
    seen = {float(x[0, 0, 0, 0]) for x in batches.map(wrapped)}
    assert TraceCounter.traces == 4
    assert len(seen) >= 3 and seen <= {1.0, 2.0, 3.0, 4.0}


def _mixes(mixup, cutmix, batches=12, **kwargs):
    pipelines = Pipelines(colour_data(96), SIZE)
    plain = pipelines.dataset("train", 16, training=True, seed=3)
    mixed = pipelines.dataset(
        "train", 16, training=True, seed=3, mixup=mixup, cutmix=cutmix, **kwargs
    )
    # Two epochs of each, one pipeline after the other.
    plain = [(x.numpy(), y.numpy()) for x, y in plain.repeat(2)]
    mixed = [(x.numpy(), y.numpy()) for x, y in mixed.repeat(2)]
    assert len(plain) == len(mixed) == batches
    return [(*a, *b) for a, b in zip(plain, mixed, strict=True)]


def _kind(originals, images):
    """`cutmix` when every pixel is some image's own (a pasted box), `mixup`
    when most images are blends, `none` when unchanged."""
    if np.array_equal(images, originals):
        return "none"
    own = (images[:, None] == originals[None]).all(axis=-1).any(axis=1)
    if own.all():
        return "cutmix"
    blended = (~own).reshape(len(images), -1).mean(axis=1) > 0.5
    return "mixup" if blended.mean() >= 0.5 else "mixed kinds"


@pytest.mark.parametrize(
    "mixup, cutmix",
    [(MixUp(alpha=1.0), None), (None, CutMix()), (MixUp(alpha=1.0), CutMix())],
    ids=["mixup", "cutmix", "both"],
)
def test_mixed_batches_have_soft_labels_summing_to_one(mixup, cutmix):
    kinds = []
    for x0, y0, x, y in _mixes(mixup, cutmix):
        assert x.shape == x0.shape and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 255
        # What categorical crossentropy takes: one row of CLASSES per image.
        assert y.shape == (len(y0), CLASSES) and y.dtype == np.float32
        assert (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
        # Each image keeps at least its own label's share or gives it all away
        # to the one image mixed in: two classes at most per row.
        assert ((y > 1e-6).sum(axis=1) <= 2).all()
        kinds.append(_kind(x0, x))
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
        assert np.isfinite(float(loss(y, np.full(y.shape, 1 / CLASSES))))
    soft = [k for k in kinds if k != "none"]
    assert soft and "mixed kinds" not in kinds
    if mixup and cutmix:  # each batch one of the two, and both come up
        assert set(soft) == {"mixup", "cutmix"}, kinds
    else:
        assert set(soft) == {"mixup" if mixup else "cutmix"}, kinds


def test_mixing_probability_leaves_some_batches_plain_one_hot():
    kinds, plain_rows = [], []
    for x0, y0, x, y in _mixes(MixUp(alpha=1.0, probability=0.5), None):
        kind = _kind(x0, x)
        kinds.append(kind)
        if kind == "none":
            plain_rows.append(np.array_equal(y, np.eye(CLASSES)[y0]))
    assert "none" in kinds and "mixup" in kinds, kinds
    assert all(plain_rows)


def test_one_hot_labels_without_mixing_and_plain_validation():
    data = colour_data()
    data.splits["validation"] = data.splits["train"]
    pipelines = Pipelines(data, SIZE)
    _, labels = next(iter(pipelines.dataset("validation", 8)))
    assert labels.dtype == tf.int32 and labels.shape == (8,)
    # One-hot for a categorical loss, unmixed and unaugmented even when the
    # training pipeline mixes.
    x, y = next(iter(pipelines.dataset("validation", 8, one_hot=True)))
    plain, _ = next(iter(pipelines.dataset("validation", 8)))
    np.testing.assert_array_equal(y.numpy(), np.eye(CLASSES)[labels.numpy()])
    np.testing.assert_array_equal(x.numpy(), plain.numpy())
    # Mixing applies to training pipelines only.
    x, y = next(iter(pipelines.dataset("validation", 8, mixup=MixUp())))
    np.testing.assert_array_equal(x.numpy(), plain.numpy())
    assert y.dtype == tf.int32


def test_feature_pipeline_gives_one_hot_labels_when_asked():
    features = np.arange(20, dtype="float32").reshape(10, 2)
    labels = np.arange(10) % 3
    _, y = next(iter(feature_pipeline(features, labels, 4, num_classes=3)))
    np.testing.assert_array_equal(y.numpy(), np.eye(3)[labels[:4]])
    _, y = next(iter(feature_pipeline(features, labels, 4)))
    assert y.dtype == tf.int32
