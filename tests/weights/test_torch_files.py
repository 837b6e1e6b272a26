"""PyTorch checkpoints as `create_model(..., weights=PATH, weights_map=...)`:
a CIFAR ResNet-20 written here in PyTorch's layout and names (no torch needed)
computes the same function once loaded; every mismatch is named and loads
nothing."""

import keras
import numpy as np
import pytest
from torch_format import write_state_dict

from kerazoo.models import create_model
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.convert import TORCH_NAMES
from kerazoo.weights.torch_files import load_torch_file
from kerazoo.weights.torch_files import to_keras_layout


def _torch_key(path):
    *scope, name = path.split("/")
    return ".".join([*scope, TORCH_NAMES[name]])


def _torch_layout(value):
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if value.ndim == 2:
        return value.T
    return value


@pytest.fixture
def published(tmp_path, fake_torch):
    keras.utils.set_random_seed(1)
    source = create_model("resnet20", input_shape=(32, 32, 3))
    # Batch-norm statistics away from their initial values, so that they count.
    rng = np.random.default_rng(0)
    for v in source.weights:
        if v.path.endswith(("moving_mean", "moving_variance")):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    arrays = {_torch_key(v.path): _torch_layout(v.numpy()) for v in source.weights}
    arrays["fc.num_batches_tracked"] = np.zeros(())  # unused keys are fine
    path = tmp_path / "resnet20.pth"
    write_state_dict(path, arrays, fake_torch)
    mapping = {v.path: _torch_key(v.path) for v in source.weights}
    return source, path, mapping


def test_loads_a_pytorch_checkpoint_with_a_map(published):
    source, path, mapping = published
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    for weights_map in (mapping, lambda p: mapping.get(p)):
        keras.utils.set_random_seed(2)
        model = create_model(
            "resnet20",
            input_shape=(32, 32, 3),
            weights=str(path),
            weights_map=weights_map,
        )
        np.testing.assert_allclose(
            model.predict_on_batch(x), source.predict_on_batch(x), atol=1e-5
        )


def test_mismatches_are_named_and_load_nothing(published):
    _, path, mapping = published
    model = create_model("resnet20", input_shape=(32, 32, 3))
    before = [v.numpy().copy() for v in model.weights]
    first = model.weights[0].path
    with pytest.raises(WeightMismatchError, match=f"no checkpoint key for {first}"):
        load_torch_file(model, path, {k: v for k, v in mapping.items() if k != first})
    typo = dict(mapping, **{first: mapping[first].replace("weight", "wieght")})
    with pytest.raises(WeightMismatchError, match="Close keys: .*weight"):
        load_torch_file(model, path, typo)
    for v, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), old)
    # Another number of classes: refused, unless the new head is wanted.
    five = create_model("resnet20", num_classes=5, input_shape=(32, 32, 3))
    with pytest.raises(WeightMismatchError, match="predictions.*reset_head=True"):
        load_torch_file(five, path, mapping)
    load_torch_file(five, path, mapping, reset_head=True)
    stem = five.get_layer("body").get_layer("stem").weights[0]
    np.testing.assert_array_equal(
        _torch_layout(stem.numpy()), _load(path)[mapping[stem.path]]
    )
    with pytest.raises(ValueError, match="pass weights_map"):
        create_model("resnet20", weights=str(path))
    with pytest.raises(ValueError, match="PyTorch checkpoints only"):
        create_model("resnet20", weights_map=mapping)


def _load(path):
    from kerazoo.weights import load_checkpoint

    return load_checkpoint(path)


def test_layouts():
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(8, 4, 3, 3))  # OIHW
    assert to_keras_layout(conv, (3, 3, 4, 8)).shape == (3, 3, 4, 8)
    np.testing.assert_array_equal(
        to_keras_layout(conv, (3, 3, 4, 8))[1, 2], conv[:, :, 1, 2].T
    )
    depthwise = rng.normal(size=(6, 1, 3, 3))  # (C, 1, kh, kw)
    np.testing.assert_array_equal(
        to_keras_layout(depthwise, (3, 3, 6, 1))[..., 0],
        depthwise[:, 0].transpose(1, 2, 0),
    )
    dense = rng.normal(size=(10, 64))  # (out, in)
    np.testing.assert_array_equal(to_keras_layout(dense, (64, 10)), dense.T)
    conv1d = rng.normal(size=(8, 4, 5))  # OIK
    assert to_keras_layout(conv1d, (5, 4, 8)).shape == (5, 4, 8)


def test_layouts_by_kind_and_a_misfit_left_for_the_error():
    conv, depthwise = np.zeros((8, 4, 3, 5)), np.zeros((8, 1, 3, 5))
    assert to_keras_layout(conv, (3, 5, 4, 8)).shape == (3, 5, 4, 8)
    assert to_keras_layout(depthwise, (3, 5, 8, 1)).shape == (3, 5, 8, 1)
    assert to_keras_layout(depthwise, (3, 5, 1, 8)).shape == (3, 5, 1, 8)
    # No layout fits: the convolution's, for the mismatch to be named.
    assert to_keras_layout(conv, (3, 5, 8, 1)).shape == (3, 5, 4, 8)
    assert to_keras_layout(np.zeros((10, 4)), (4, 10)).shape == (4, 10)
    assert to_keras_layout(np.zeros((6, 2, 3)), (3, 2, 6)).shape == (3, 2, 6)
