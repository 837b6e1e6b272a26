"""`create_model(..., features_only=True)`: the body's multi-scale feature maps
for detection and segmentation users, as timm's `features_only` gives them."""

import keras
import numpy as np
import pytest

from kerazoo.models import create_model

# The smallest model of each family and the output strides of its stem and
# stages (GoogLeNet's stem already reduces by 8; the CIFAR ResNets keep the
# input's size in their first stage).
STRIDES = {
    "googlenet": [8, 16, 32],
    "resnet18": [4, 8, 16, 32],
    "resnet20": [1, 2, 4],
    "convnext_tiny": [4, 8, 16, 32],
    "densenet121": [4, 8, 16, 32],
    "efficientnet_lite0": [2, 4, 8, 16, 32],
    "efficientnetv2_b0": [2, 4, 8, 16, 32],
    "mobilenet_v2_035": [2, 4, 8, 16, 32],
    "mobilenet_v3_small": [2, 4, 8, 16, 32],
}


# Building a functional model is slow under JAX: there the smallest family
# only (the code is the same on every backend).
TENSORFLOW = keras.backend.backend() == "tensorflow"
NAMES = sorted(STRIDES) if TENSORFLOW else ["resnet20"]


@pytest.mark.parametrize("name", NAMES)
def test_each_family_gives_its_maps_at_every_stride(name):
    side = 32 if name == "resnet20" else 64
    model = create_model(name, features_only=True, input_shape=(side, side, 3))
    strides = STRIDES[name]
    assert model.output_names == [f"stride{s}" for s in strides]
    for stride, output in zip(strides, model.outputs, strict=True):
        assert tuple(output.shape[1:3]) == (side // stride, side // stride)
    # The body's layers and variables, without the head (or a top convolution).
    paths = {w.path for w in model.weights}
    assert paths and all(p.startswith(("body/", "preprocessing/")) for p in paths)
    assert not any("/top/" in p for p in paths)


@pytest.mark.skipif(not TENSORFLOW, reason="slow to build under JAX; same code")
def test_pretrained_features_keep_the_weights_and_survive_saving(tmp_path):
    side = 64
    model = create_model(
        "efficientnet_lite0",
        weights="imagenet",
        features_only=True,
        out_indices=(1, -1),
        input_shape=(side, side, 3),
    )
    assert model.output_names == ["stride4", "stride32"]
    full = create_model("efficientnet_lite0", weights="imagenet")
    theirs = {w.path: keras.ops.convert_to_numpy(w) for w in full.weights}
    for weight in model.weights:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(weight), theirs[weight.path], err_msg=weight.path
        )
    model.save(tmp_path / "features.keras")
    again = keras.models.load_model(tmp_path / "features.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, side, side, 3)).astype("float32")
    ours, theirs = model.predict(x, verbose=0), again.predict(x, verbose=0)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert {w.path for w in again.weights} == {w.path for w in model.weights}


def test_out_indices_outside_the_levels_are_named():
    with pytest.raises(ValueError, match=r"0 \(stride 1\), .* 2 \(stride 4\)\. "):
        create_model("resnet20", features_only=True, out_indices=[0, 3])
    with pytest.raises(ValueError, match="needs `features_only=True`"):
        create_model("resnet20", out_indices=[0])
