"""MBConvBlock's MobileNet options: hard-swish and ReLU6 activations, the SE's own
activation and hard-sigmoid gate, fractional expansions, the MobileNetV3 width
rounding (`divisor`, `se_from="expanded"`); EfficientNetV2's fused-MBConv
(`fused=True`); and defaults that build what they built before."""

import keras
import numpy as np
import pytest

from kerazoo.layers import MBConvBlock
from kerazoo.layers.mbconv_block import make_divisible
from kerazoo.testing import run_layer_test


def conv(k, cin, cout, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 4 * c


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_make_divisible_is_mobilenets_channel_rounding():
    # Values of MobileNetV2/V3 at their published widths.
    assert make_divisible(32 * 0.35) == 16  # 8 would be more than 10% down
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(24 * 0.75) == 24
    assert make_divisible(1280 * 1.3) == 1664
    assert make_divisible(16 * 0.25) == 8  # never below the divisor
    assert make_divisible(72 * 0.25) == 24
    assert make_divisible(80 * 2.3) == 184  # 183.99999999999997
    assert make_divisible(13, 1) == 13


def test_defaults_keep_the_efficientnet_block():
    block = MBConvBlock(24, expand_ratio=6, se_ratio=0.25, activation="swish")
    block.build((None, 8, 8, 16))
    assert block.expand.filters == 96
    # Squeeze from the input channels, truncated; SE activation = the block's.
    assert block.se.reduce.filters == 4
    assert block.se.activation is block.activation
    assert block.se.gate_activation is keras.activations.sigmoid
    names = {v.path.split("/", 1)[1].rsplit("/", 1)[0] for v in block.weights}
    assert names == {
        "expand_conv",
        "expand_bn",
        "depthwise",
        "depthwise_bn",
        "se/reduce",
        "se/expand",
        "project_conv",
        "project_bn",
    }
    odd = MBConvBlock(8, expand_ratio=2, se_ratio=0.25)
    odd.build((None, 4, 4, 10))
    assert odd.se.reduce.filters == 2  # int(2.5), not 3


def _v3_params(cin, cout, mid, k, squeeze):
    total = conv(1, cin, mid) + bn(mid) if mid != cin else 0
    total += k * k * mid + bn(mid)
    if squeeze:
        total += conv(1, mid, squeeze, True) + conv(1, squeeze, mid, True)
    return total + conv(1, mid, cout) + bn(cout)


V3 = {
    "se_ratio": 0.25,
    "se_from": "expanded",
    "se_activation": "relu",
    "se_gate_activation": "hard_sigmoid",
    "divisor": 8,
    "activation": "hard_swish",
}


def test_mobilenet_v3_block_harness():
    # MobileNetV3-Small's second block shape: 16 -> 72 (x4.5) -> 24, 5x5, SE
    # squeezing 72 * 0.25 = 18 up to 24.
    run_layer_test(
        MBConvBlock,
        {"filters": 24, "expand_ratio": 4.5, "kernel_size": 5, "strides": 2, **V3},
        input_shape=(2, 8, 8, 16),
        expected_output_shape=(2, 4, 4, 24),
        expected_num_params=_v3_params(16, 24, 72, 5, 24),
    )


def test_mobilenet_v3_widths_and_activations():
    block = MBConvBlock(80, expand_ratio=2.3, **V3)
    block.build((None, 4, 4, 80))
    assert block.expand.filters == 184
    assert block.se.reduce.filters == 48  # 184 / 4 = 46, to a multiple of 8
    assert block.se.activation is keras.activations.relu
    assert block.se.gate_activation is keras.activations.hard_sigmoid
    assert block.expand_act.activation is keras.activations.hard_silu
    config = block.get_config()
    assert config["se_from"] == "expanded" and config["divisor"] == 8
    assert config["se_gate_activation"] == "hard_sigmoid"
    clone = MBConvBlock.from_config(config)
    clone.build((None, 4, 4, 80))
    assert [tuple(v.shape) for v in clone.weights] == [
        tuple(v.shape) for v in block.weights
    ]
    # Without a divisor a fractional expansion rounds to the nearest integer.
    plain = MBConvBlock(8, expand_ratio=2.5)
    plain.build((None, 4, 4, 9))
    assert plain.expand.filters == 22


def test_expansion_one_has_no_expand_convolution():
    # MobileNetV3-Small's first block: 16 -> 16, stride 2, SE on the input width.
    block = MBConvBlock(16, expand_ratio=1, kernel_size=3, strides=2, **V3)
    assert block(keras.Input((16, 16, 16))).shape == (None, 8, 8, 16)
    assert block.expand is None
    assert not any("expand_conv" in v.path for v in block.weights)
    assert block.se.reduce.filters == 8
    assert block.count_params() == _v3_params(16, 16, 16, 3, 8)


def test_hard_sigmoid_gate_and_hard_swish_compute_their_formulas():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    block = MBConvBlock(8, expand_ratio=2, **V3)
    block.build(x.shape)
    # A gate whose logits are all 3: hard sigmoid gives exactly 1 (sigmoid 0.95),
    # so the block computes what it computes without SE.
    block.se.expand.kernel.assign(np.zeros(block.se.expand.kernel.shape))
    block.se.expand.bias.assign(np.full(block.se.expand.bias.shape, 3.0))
    plain = MBConvBlock(8, expand_ratio=2, activation="hard_swish")
    plain.build(x.shape)
    for part in (
        "expand",
        "expand_norm",
        "depthwise",
        "depthwise_norm",
        "project",
        "project_norm",
    ):
        getattr(plain, part).set_weights(getattr(block, part).get_weights())
    np.testing.assert_allclose(_np(block(x)), _np(plain(x)), rtol=1e-6, atol=1e-6)
    t = np.linspace(-5, 5, 11).astype("float32")
    expected = t * np.clip(t + 3, 0, 6) / 6
    np.testing.assert_allclose(_np(block.activation(t)), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"se_from": "middle"}, r"`se_from` must be one of \['input', 'expanded'\]"),
        ({"expand_ratio": 0}, "Received: expand_ratio=0"),
        ({"expand_ratio": "6"}, "`expand_ratio` must be positive"),
        ({"divisor": 0}, "Received: divisor=0"),
        ({"se_gate_activation": "no_such"}, "no_such"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MBConvBlock(8, **kwargs)


# Fused-MBConv (EfficientNetV2) --------------------------------------------------


def test_fused_block_harness():
    # EfficientNetV2-B0's second stage: a 3x3/2 convolution expanding 16 -> 64,
    # then the 1x1 projection to 32.
    run_layer_test(
        MBConvBlock,
        {"filters": 32, "expand_ratio": 4, "strides": 2, "fused": True},
        input_shape=(2, 8, 8, 16),
        expected_output_shape=(2, 4, 4, 32),
        expected_num_params=conv(3, 16, 64) + bn(64) + conv(1, 64, 32) + bn(32),
    )


def _fused_reference(block, x):
    """What the fused block computes, from plain Keras layers with its weights:
    (expand KxK - BN - act - project 1x1 - BN), or, without expansion, the one
    KxK convolution - BN - act; plus the input when the shapes allow."""
    bn_layer = keras.layers.BatchNormalization
    if block.expand is not None:
        layers = [
            keras.layers.Conv2D(
                block.expand.filters, 3, block.strides, "same", use_bias=False
            ),
            bn_layer(epsilon=1e-3),
            keras.layers.Activation("swish"),
            keras.layers.Conv2D(block.filters, 1, use_bias=False),
            bn_layer(epsilon=1e-3),
        ]
        parts = [block.expand, block.expand_norm, None, block.project]
        parts.append(block.project_norm)
    else:
        layers = [
            keras.layers.Conv2D(
                block.filters, 3, block.strides, "same", use_bias=False
            ),
            bn_layer(epsilon=1e-3),
            keras.layers.Activation("swish"),
        ]
        parts = [block.project, block.project_norm, None]
    y = x
    for layer, part in zip(layers, parts, strict=True):
        layer.build(y.shape)
        if part is not None:
            layer.set_weights(part.get_weights())
        y = _np(layer(y, training=False))
    if block.strides == 1 and x.shape[-1] == block.filters:
        y = y + x
    return y


@pytest.mark.parametrize(
    ("cin", "filters", "expand_ratio", "strides"),
    [(8, 8, 4, 1), (8, 16, 4, 2), (8, 8, 1, 1), (8, 16, 1, 2)],
)
def test_fused_block_computes_the_fused_mbconv(cin, filters, expand_ratio, strides):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 6, cin)).astype("float32")
    block = MBConvBlock(filters, expand_ratio=expand_ratio, strides=strides, fused=True)
    block.build(x.shape)
    for layer in (block.expand_norm, block.project_norm):
        if layer is not None:
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.1, n))
    assert block.depthwise is None
    if expand_ratio == 1:
        # The projection is the full, strided convolution, with an activation.
        assert block.expand is None and block.project.kernel_size == (3, 3)
        assert block.project.strides == (strides, strides)
        assert block.project_act is not None
    else:
        assert block.expand.kernel_size == (3, 3)
        assert block.expand.strides == (strides, strides)
        assert block.project.kernel_size == (1, 1) and block.project_act is None
    np.testing.assert_allclose(
        _np(block(x, training=False)),
        _fused_reference(block, x),
        rtol=1e-5,
        atol=1e-5,
    )


def test_fused_block_serialises_and_unfused_configs_are_unchanged():
    block = MBConvBlock(16, expand_ratio=1, strides=1, fused=True, drop_rate=0.1)
    block.build((None, 8, 8, 16))
    config = block.get_config()
    assert config["fused"] is True
    clone = MBConvBlock.from_config(config)
    clone.build((None, 8, 8, 16))
    assert clone.fused and clone.drop is not None
    assert [v.path for v in clone.weights] == [v.path for v in block.weights]
    names = {v.path.split("/", 1)[1].rsplit("/", 1)[0] for v in block.weights}
    assert names == {"project_conv", "project_bn"}
    assert block.count_params() == conv(3, 16, 16) + bn(16)
    # An unfused block's config has no new key: saved models read as before.
    assert "fused" not in MBConvBlock(8).get_config()
    unfused = MBConvBlock(8, name="b").get_config()
    assert MBConvBlock(8, fused=False, name="b").get_config() == unfused
    fused_keys = MBConvBlock(8, fused=True).get_config().keys()
    assert fused_keys - unfused.keys() == {"fused"}


def test_fused_block_folding_pairs_and_squeeze_excite():
    block = MBConvBlock(24, expand_ratio=4, fused=True, se_ratio=0.25)
    block.build((None, 8, 8, 16))
    assert block.folding_pairs() == [
        (block.expand, block.expand_norm),
        (block.project, block.project_norm),
    ]
    # Squeeze from the input channels, on the expanded features.
    assert block.se.reduce.filters == 4 and block.se.expand.filters == 64
    plain = MBConvBlock(16, expand_ratio=1, fused=True)
    plain.build((None, 8, 8, 16))
    assert plain.folding_pairs() == [(plain.project, plain.project_norm)]


# PyTorch's padding (torchvision's and timm's weights) ----------------------------


@pytest.mark.parametrize(("fused", "expand_ratio"), [(False, 6), (True, 4), (True, 1)])
def test_symmetric_padding_pads_the_strided_convolution_on_every_side(
    fused, expand_ratio
):
    kwargs = dict(expand_ratio=expand_ratio, kernel_size=5, strides=2, fused=fused)
    same = MBConvBlock(8, name="b", **kwargs)
    block = MBConvBlock(8, padding="symmetric", name="b", **kwargs)
    x = np.random.default_rng(0).normal(size=(1, 7, 7, 4)).astype("float32")
    same(x)
    assert _np(block(x)).shape == (1, 4, 4, 8)  # torch's (7 + 4 - 5) // 2 + 1
    assert [v.path for v in block.weights] == [v.path for v in same.weights]
    # (Its numbers are torch's: tests/weights/test_efficientnet_torch.py.)
    config = block.get_config()
    assert config["padding"] == "symmetric"
    assert "padding" not in same.get_config()
    clone = MBConvBlock.from_config(config)
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(_np(clone(x)), _np(block(x)), atol=1e-6)
    with pytest.raises(ValueError, match="Received: padding='valid'"):
        MBConvBlock(8, padding="valid")
