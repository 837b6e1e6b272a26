"""ConvNeXtBlock: parameters against a hand computation, the shared layer
harness, stochastic depth (the identity at inference, whole examples dropped
in training), the layer scale (and None for none), and clear errors."""

import keras
import numpy as np
import pytest

from kerazoo.layers import ConvNeXtBlock
from kerazoo.testing import run_layer_test


def _params(c, kernel=7, expansion=4, layer_scale=True):
    depthwise = kernel * kernel * c + c
    norm = 2 * c
    mlp = (c * expansion * c + expansion * c) + (expansion * c * c + c)
    return depthwise + norm + mlp + (c if layer_scale else 0)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_block_harness():
    # A layer scale that lets one SGD step move every weight (1e-6 would not).
    run_layer_test(
        ConvNeXtBlock,
        {"layer_scale_init_value": 0.5},
        input_shape=(2, 8, 8, 16),
        expected_output_shape=(2, 8, 8, 16),
        expected_num_trainable_weights=9,
        expected_num_non_trainable_weights=0,
        expected_num_params=_params(16),
    )


def test_block_without_layer_scale_with_stochastic_depth_harness():
    # No fit step: with two examples the branch may drop for both (the
    # training behaviour has its own test below).
    run_layer_test(
        ConvNeXtBlock,
        {
            "layer_scale_init_value": None,
            "drop_path_rate": 0.1,
            "kernel_size": 3,
            "expansion": 2,
        },
        input_shape=(2, 4, 4, 8),
        expected_output_shape=(2, 4, 4, 8),
        expected_num_trainable_weights=8,
        expected_num_params=_params(8, kernel=3, expansion=2, layer_scale=False),
        run_training=False,
    )


def test_children_are_named_as_keras_applications():
    block = ConvNeXtBlock(name="block1")
    block.build((None, 8, 8, 32))
    names = {v.path.split("/", 1)[1] for v in block.weights}
    assert names == {
        "layer_scale",
        "depthwise_conv/kernel",
        "depthwise_conv/bias",
        "layernorm/gamma",
        "layernorm/beta",
        "pointwise_conv_1/kernel",
        "pointwise_conv_1/bias",
        "pointwise_conv_2/kernel",
        "pointwise_conv_2/bias",
    }
    assert block.expand.units == 128 and block.norm.epsilon == 1e-6
    np.testing.assert_array_equal(_np(block.gamma), np.full(32, 1e-6, "float32"))
    config = block.get_config()
    assert config["layer_scale_init_value"] == 1e-6
    assert config["drop_path_rate"] == 0.0
    clone = ConvNeXtBlock.from_config(config)
    clone.build((None, 8, 8, 32))
    assert [v.shape for v in clone.weights] == [v.shape for v in block.weights]


def test_the_branch_is_scaled_by_the_layer_scale():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 8)).astype("float32")
    scaled = ConvNeXtBlock(layer_scale_init_value=0.5)
    plain = ConvNeXtBlock(layer_scale_init_value=None)
    scaled.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(scaled.get_weights()[1:])  # all but the layer scale
    assert plain.gamma is None and "layer_scale" not in str(plain.weights)
    branch = _np(plain(x)) - x
    np.testing.assert_allclose(_np(scaled(x)) - x, 0.5 * branch, atol=1e-5)
    assert plain.get_config()["layer_scale_init_value"] is None


def test_stochastic_depth_is_the_identity_at_inference_and_drops_examples():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(32, 4, 4, 8)).astype("float32")
    block = ConvNeXtBlock(drop_path_rate=0.5, layer_scale_init_value=1.0)
    kept = _np(block(x, training=False)) - x
    assert np.abs(kept).min(axis=(1, 2, 3)).max() > 0  # a branch that shows
    dropped = 0
    for _ in range(2):
        branch = _np(block(x, training=True)) - x
        for got, full in zip(branch, kept, strict=True):
            if np.all(got == 0):
                dropped += 1
            else:  # kept whole, scaled by 1 / (1 - rate)
                np.testing.assert_allclose(got, 2 * full, rtol=1e-4, atol=1e-5)
    assert 10 < dropped < 54  # of 64 draws, each with probability 0.5
    np.testing.assert_allclose(_np(block(x)) - x, kept, atol=1e-6)  # inference


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
        ({"layer_scale_init_value": 0}, "layer_scale_init_value"),
        ({"data_format": "channels_first"}, "channels_last"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvNeXtBlock(**kwargs)


def test_a_2d_input_is_refused():
    with pytest.raises(ValueError, match="4D input"):
        ConvNeXtBlock().build((None, 16))
