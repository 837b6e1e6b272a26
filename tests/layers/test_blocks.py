"""Every block: output shape and parameter count against a hand computation, the
behaviour that defines it, the shared layer harness, and clear errors."""

import keras
import numpy as np
import pytest

from kerazoo.layers import DenseBlock
from kerazoo.layers import InceptionBlock
from kerazoo.layers import MBConvBlock
from kerazoo.layers import ResidualBlock
from kerazoo.layers import SqueezeExcite
from kerazoo.layers import TransitionBlock
from kerazoo.testing import run_layer_test


def conv(k, cin, cout, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 4 * c  # gamma, beta, moving mean, moving variance


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- Inception -------------------------------------------------------------------

# GoogLeNet inception (3a) on its 28x28x192 input (Szegedy et al. 2014, Table 1).
NAIVE_3A = conv(1, 192, 64, True) + conv(3, 192, 128, True) + conv(5, 192, 32, True)
REDUCED_3A = (
    conv(1, 192, 64, True)
    + conv(1, 192, 96, True)
    + conv(3, 96, 128, True)
    + conv(1, 192, 16, True)
    + conv(5, 16, 32, True)
    + conv(1, 192, 32, True)
)


def test_inception_3a_naive_and_reduced():
    x = keras.Input((28, 28, 192))
    naive = InceptionBlock(64, 128, 32)
    reduced = InceptionBlock(
        64, 128, 32, filters_3x3_reduce=96, filters_5x5_reduce=16, filters_pool_proj=32
    )
    assert naive(x).shape == (None, 28, 28, 64 + 128 + 32 + 192)
    assert reduced(x).shape == (None, 28, 28, 256)
    assert naive.count_params() == NAIVE_3A == 387_296
    assert reduced.count_params() == REDUCED_3A == 163_696
    assert naive.count_params() > 2 * reduced.count_params()
    assert not naive.reduced and reduced.reduced


def test_inception_naive_pool_branch_passes_the_pooled_input():
    x = _inputs((2, 6, 6, 5))
    y = _np(InceptionBlock(2, 3, 4)(x))
    pooled = _np(keras.layers.MaxPooling2D(3, strides=1, padding="same")(x))
    np.testing.assert_array_equal(y[..., 9:], pooled)


def test_inception_harness():
    kwargs = {
        "filters_1x1": 4,
        "filters_3x3": 6,
        "filters_5x5": 2,
        "filters_3x3_reduce": 3,
        "filters_5x5_reduce": 2,
        "filters_pool_proj": 3,
        "batch_norm": True,
    }
    params = (
        conv(1, 5, 4)
        + conv(1, 5, 3)
        + conv(3, 3, 6)
        + conv(1, 5, 2)
        + conv(5, 2, 2)
        + conv(1, 5, 3)
        + bn(4)
        + bn(3)
        + bn(6)
        + bn(2)
        + bn(2)
        + bn(3)
    )
    run_layer_test(
        InceptionBlock,
        kwargs,
        input_shape=(2, 6, 6, 5),
        expected_output_shape=(2, 6, 6, 15),
        expected_num_trainable_weights=6 + 12,
        expected_num_non_trainable_weights=12,
        expected_num_params=params,
    )


# --- Residual --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape, params",
    [
        (
            {"filters": 16},
            (2, 8, 8, 16),
            (2, 8, 8, 16),
            2 * conv(3, 16, 16) + 2 * bn(16),
        ),
        (
            {"filters": 16, "strides": 2},
            (2, 8, 8, 8),
            (2, 4, 4, 16),
            conv(3, 8, 16) + conv(3, 16, 16) + 2 * bn(16) + conv(1, 8, 16) + bn(16),
        ),
        (
            {"filters": 4, "kind": "bottleneck", "strides": 2},
            (2, 8, 8, 16),
            (2, 4, 4, 16),
            conv(1, 16, 4)
            + conv(3, 4, 4)
            + conv(1, 4, 16)
            + 2 * bn(4)
            + bn(16)
            + conv(1, 16, 16)
            + bn(16),
        ),
        (
            {"filters": 16, "shortcut": False},
            (2, 8, 8, 8),
            (2, 8, 8, 16),
            conv(3, 8, 16) + conv(3, 16, 16) + 2 * bn(16),
        ),
        (
            {"filters": 16, "strides": 2, "preactivation": True},
            (2, 8, 8, 8),
            (2, 4, 4, 16),
            bn(8) + conv(3, 8, 16) + bn(16) + conv(3, 16, 16) + conv(1, 8, 16),
        ),
        (
            {"filters": 4, "kind": "bottleneck", "stride_on": "1x1", "strides": 2},
            (2, 9, 9, 16),
            (2, 5, 5, 16),
            conv(1, 16, 4)
            + conv(3, 4, 4)
            + conv(1, 4, 16)
            + 2 * bn(4)
            + bn(16)
            + conv(1, 16, 16)
            + bn(16),
        ),
        (
            {"filters": 16, "strides": 2, "shortcut_type": "zero_pad"},
            (2, 8, 8, 8),
            (2, 4, 4, 16),
            conv(3, 8, 16) + conv(3, 16, 16) + 2 * bn(16),
        ),
        (
            {"filters": 4, "kind": "bottleneck", "strides": 2, "padding": "symmetric"},
            (2, 8, 8, 16),
            (2, 4, 4, 16),
            conv(1, 16, 4)
            + conv(3, 4, 4)
            + conv(1, 4, 16)
            + 2 * bn(4)
            + bn(16)
            + conv(1, 16, 16)
            + bn(16),
        ),
        (
            {"filters": 16, "strides": 2, "padding": "symmetric"},
            (2, 7, 7, 8),
            (2, 4, 4, 16),
            conv(3, 8, 16) + conv(3, 16, 16) + 2 * bn(16) + conv(1, 8, 16) + bn(16),
        ),
    ],
)
def test_residual_block(kwargs, in_shape, out_shape, params):
    run_layer_test(
        ResidualBlock,
        kwargs,
        input_shape=in_shape,
        expected_output_shape=out_shape,
        expected_num_params=params,
    )


def test_resnet50_bottleneck_sizes():
    block = ResidualBlock(64, kind="bottleneck", strides=2)
    assert block(keras.Input((56, 56, 256))).shape == (None, 28, 28, 256)
    assert block.count_params() == (
        conv(1, 256, 64)
        + conv(3, 64, 64)
        + conv(1, 64, 256)
        + 2 * bn(64)
        + bn(256)
        + conv(1, 256, 256)
        + bn(256)
    )


@pytest.mark.parametrize(
    "stride_on, strided_conv", [("3x3", "conv2"), ("1x1", "conv1")]
)
def test_bottleneck_stride_placement(stride_on, strided_conv):
    block = ResidualBlock(4, kind="bottleneck", strides=2, stride_on=stride_on)
    block.build((None, 8, 8, 16))
    strides = {c.name: c.strides for c in block.convs}
    assert strides[strided_conv] == (2, 2)
    assert sum(s == (2, 2) for s in strides.values()) == 1


def _padded_pair(side, **kwargs):
    """A block with `padding="same"` and one with `"symmetric"`, the same
    weights, and their outputs on an image of `side`."""
    x = _inputs((2, side, side, 8))
    same = ResidualBlock(4, strides=2, name="block", **kwargs)
    symmetric = ResidualBlock(4, strides=2, padding="symmetric", name="block", **kwargs)
    same.build(x.shape)
    symmetric.build(x.shape)
    assert [w.path for w in symmetric.weights] == [w.path for w in same.weights]
    rng = np.random.default_rng(1)
    for a, b in zip(same.weights, symmetric.weights, strict=True):
        value = rng.uniform(0.5, 1.5, a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return _np(same(x, training=False)), _np(symmetric(x, training=False)), x


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"kind": "bottleneck"},
        {"kind": "bottleneck", "stride_on": "1x1"},
        {"preactivation": True},
    ],
)
def test_symmetric_padding_equals_same_at_odd_sides_only(kwargs):
    same, symmetric, _ = _padded_pair(9, **kwargs)
    np.testing.assert_allclose(symmetric, same, rtol=1e-5, atol=1e-5)
    same, symmetric, _ = _padded_pair(8, **kwargs)
    assert symmetric.shape == same.shape
    assert symmetric.shape[1:3] == (4, 4)
    if kwargs.get("stride_on") == "1x1":  # strides only in a 1x1 convolution
        np.testing.assert_allclose(symmetric, same, rtol=1e-5, atol=1e-5)
    else:
        assert np.abs(symmetric - same).max() > 1e-3


def test_symmetric_padding_is_pytorchs():
    """A strided 3x3 convolution pads one pixel on each side, then is "valid":
    `x` padded by 1 and convolved without padding."""
    block = ResidualBlock(4, strides=2, padding="symmetric", shortcut=False)
    x = _inputs((1, 8, 8, 3))
    block.build(x.shape)
    assert block.convs[0].padding == "valid"
    assert block.convs[1].padding == "same"  # stride 1: symmetric already
    assert block.pads[1] is None
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    expected = keras.ops.conv(padded, block.convs[0].kernel, strides=2)
    np.testing.assert_allclose(
        _np(block.convs[0](block.pads[0](x))), _np(expected), atol=1e-5
    )


def test_padding_config_round_trip():
    assert "padding" not in ResidualBlock(4).get_config()  # as before the option
    block = ResidualBlock(4, strides=2, padding="symmetric")
    config = block.get_config()
    assert config["padding"] == "symmetric"
    assert ResidualBlock.from_config(config).padding == "symmetric"


def test_zero_pad_shortcut_is_option_a():
    block = ResidualBlock(6, strides=2, shortcut_type="zero_pad")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    block(x)
    _zero_kernels(block)  # the residual branch gives 0 (BN of 0 is its beta, 0)
    out = keras.ops.convert_to_numpy(block(x, training=False))
    expected = np.maximum(np.pad(x[:, ::2, ::2, :], [(0, 0)] * 3 + [(1, 1)]), 0)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_preactivation_zero_pad_shortcut_subsamples_and_pads():
    # A pre-activation block adds the shortcut without an activation after it:
    # with zero kernels its output is exactly the zero-padded, subsampled input.
    block = ResidualBlock(6, strides=2, shortcut_type="zero_pad", preactivation=True)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    assert block.compute_output_shape(x.shape) == (2, 4, 4, 6)
    block(x)
    _zero_kernels(block)
    out = keras.ops.convert_to_numpy(block(x, training=False))
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0)] * 3 + [(1, 1)])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def _zero_kernels(block):
    for w in block.weights:
        if "kernel" in w.path:
            w.assign(np.zeros(w.shape, "float32"))


def test_identity_shortcut_and_plain_block():
    """With all kernels zero, the residual branch vanishes: a residual block is then
    relu(x) and a plain block outputs zeros (the identity He et al. argue a deep
    plain network finds hard to learn)."""
    x = _inputs((2, 5, 5, 8))
    residual = ResidualBlock(8)
    plain = ResidualBlock(8, shortcut=False)
    for block in (residual, plain):
        block.build(x.shape)
        _zero_kernels(block)
    np.testing.assert_allclose(
        _np(residual(x, training=False)), np.maximum(x, 0), atol=1e-6
    )
    np.testing.assert_array_equal(_np(plain(x, training=False)), 0.0)
    pre = ResidualBlock(8, preactivation=True)
    pre.build(x.shape)
    _zero_kernels(pre)
    np.testing.assert_array_equal(_np(pre(x, training=False)), x)


# --- Dense -----------------------------------------------------------------------


def _dense_params(cin, layers, k, bottleneck=True):
    total = 0
    for i in range(layers):
        c = cin + i * k
        if bottleneck:
            total += bn(c) + conv(1, c, 4 * k) + bn(4 * k) + conv(3, 4 * k, k)
        else:
            total += bn(c) + conv(3, c, k)
    return total


def test_densenet121_first_block_sizes():
    block = DenseBlock(num_layers=6, growth_rate=32)
    assert block(keras.Input((56, 56, 64))).shape == (None, 56, 56, 64 + 6 * 32)
    assert block.count_params() == _dense_params(64, 6, 32) == 338_304


@pytest.mark.parametrize("bottleneck", [True, False])
def test_dense_block_harness(bottleneck):
    run_layer_test(
        DenseBlock,
        {"num_layers": 3, "growth_rate": 4, "bottleneck": bottleneck},
        input_shape=(2, 6, 6, 5),
        expected_output_shape=(2, 6, 6, 17),
        expected_num_params=_dense_params(5, 3, 4, bottleneck),
    )


def test_dense_block_concatenates_its_input_unchanged():
    x = _inputs((2, 5, 5, 6))
    y = _np(DenseBlock(2, 3, dropout_rate=0.2)(x, training=True))
    np.testing.assert_array_equal(y[..., :6], x)


def test_transition_block():
    run_layer_test(
        TransitionBlock,
        {"compression": 0.5},
        input_shape=(2, 7, 7, 10),
        expected_output_shape=(2, 3, 3, 5),
        expected_num_params=bn(10) + conv(1, 10, 5),
    )
    block = TransitionBlock()
    assert block(keras.Input((56, 56, 256))).shape == (None, 28, 28, 128)
    assert block.count_params() == bn(256) + conv(1, 256, 128) == 33_792


# --- Squeeze-excite and MBConv ---------------------------------------------------


def test_squeeze_excite():
    run_layer_test(
        SqueezeExcite,
        {"ratio": 0.25},
        input_shape=(2, 5, 5, 16),
        expected_output_shape=(2, 5, 5, 16),
        expected_num_params=conv(1, 16, 4, True) + conv(1, 4, 16, True),
    )
    se = SqueezeExcite(squeeze_filters=3)
    se.build((None, 5, 5, 16))
    assert se.reduce.filters == 3


def test_squeeze_excite_gate_scales_channels():
    x = _inputs((2, 4, 4, 8))
    se = SqueezeExcite(ratio=0.5, kernel_initializer="zeros")
    np.testing.assert_allclose(_np(se(x)), 0.5 * x, atol=1e-7)


def _mbconv_params(cin, cout, expand, k, se_ratio):
    mid = cin * expand
    total = 0
    if expand != 1:
        total += conv(1, cin, mid) + bn(mid)
    total += k * k * mid + bn(mid)
    if se_ratio:
        squeeze = max(1, int(cin * se_ratio))
        total += conv(1, mid, squeeze, True) + conv(1, squeeze, mid, True)
    return total + conv(1, mid, cout) + bn(cout)


@pytest.mark.parametrize(
    "kwargs, in_shape, out_shape",
    [
        (
            {"filters": 8, "expand_ratio": 1, "kernel_size": 3, "se_ratio": 0.25},
            (2, 8, 8, 8),
            (2, 8, 8, 8),
        ),
        (
            {
                "filters": 12,
                "expand_ratio": 6,
                "kernel_size": 5,
                "strides": 2,
                "se_ratio": 0.25,
            },
            (2, 8, 8, 8),
            (2, 4, 4, 12),
        ),
        (
            {
                "filters": 8,
                "expand_ratio": 4,
                "kernel_size": 3,
                "activation": "relu6",
                "drop_rate": 0.2,
            },
            (8, 8, 8, 8),
            (8, 8, 8, 8),
        ),
    ],
)
def test_mbconv_block(kwargs, in_shape, out_shape):
    params = _mbconv_params(
        in_shape[-1],
        kwargs["filters"],
        kwargs["expand_ratio"],
        kwargs["kernel_size"],
        kwargs.get("se_ratio"),
    )
    run_layer_test(
        MBConvBlock,
        kwargs,
        input_shape=in_shape,
        expected_output_shape=out_shape,
        expected_num_params=params,
    )


def test_efficientnet_b0_second_stage_block_size():
    block = MBConvBlock(24, expand_ratio=6, kernel_size=3, strides=2, se_ratio=0.25)
    assert block(keras.Input((112, 112, 16))).shape == (None, 56, 56, 24)
    assert block.count_params() == _mbconv_params(16, 24, 6, 3, 0.25) == 6_436


def test_mbconv_residual_and_stochastic_depth():
    x = _inputs((64, 4, 4, 8))
    block = MBConvBlock(8, expand_ratio=2, se_ratio=0.25, drop_rate=0.5)
    block.build(x.shape)
    inference = _np(block(x, training=False))
    assert not np.allclose(inference, x)
    # In training, a dropped example's residual branch is zero: output == input.
    y = _np(block(x, training=True))
    dropped = np.all(y == x, axis=(1, 2, 3))
    assert 10 < dropped.sum() < 54, dropped.sum()
    # No residual when the shape changes, so no stochastic depth either.
    assert MBConvBlock(8, strides=2, drop_rate=0.5)(x, training=True).shape == (
        64,
        2,
        2,
        8,
    )


# --- data format, bad input ------------------------------------------------------


@pytest.mark.parametrize(
    "layer, in_shape, out_shape",
    [
        (InceptionBlock(2, 3, 4, 2, 2, 1), (3, 8, 8), (10, 8, 8)),
        (ResidualBlock(4, kind="bottleneck", strides=2), (3, 8, 8), (16, 4, 4)),
        (DenseBlock(2, 4), (3, 8, 8), (11, 8, 8)),
        (TransitionBlock(), (6, 8, 8), (3, 4, 4)),
        (MBConvBlock(6, se_ratio=0.5, strides=2), (3, 8, 8), (6, 4, 4)),
        (SqueezeExcite(), (8, 4, 4), (8, 4, 4)),
    ],
)
def test_channels_first(layer, in_shape, out_shape):
    layer = type(layer).from_config(
        {**layer.get_config(), "data_format": "channels_first"}
    )
    assert layer(keras.Input(in_shape)).shape == (None, *out_shape)
    assert layer.compute_output_shape((None, *in_shape)) == (None, *out_shape)
    if keras.backend.backend() == "jax":  # TF's CPU kernels are channels-last only
        assert layer(_inputs((2, *in_shape))).shape == (2, *out_shape)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: InceptionBlock(0, 4, 4), "filters_1x1=0"),
        (lambda: InceptionBlock(4, 4, 4, filters_pool_proj=-1), "filters_pool_proj=-1"),
        (lambda: ResidualBlock(-8), "filters=-8"),
        (lambda: ResidualBlock(8, kind="wide"), "kind='wide'"),
        (lambda: ResidualBlock(8, strides=0), "strides=0"),
        (lambda: ResidualBlock(8, stride_on="5x5"), "stride_on='5x5'"),
        (lambda: ResidualBlock(8, padding="valid"), "padding='valid'"),
        (lambda: ResidualBlock(8, data_format="nhwc"), "data_format='nhwc'"),
        (lambda: DenseBlock(0, 12), "num_layers=0"),
        (lambda: DenseBlock(4, 1.5), "growth_rate=1.5"),
        (lambda: DenseBlock(4, 12, dropout_rate=1.0), "dropout_rate=1.0"),
        (lambda: TransitionBlock(compression=0), "compression=0"),
        (lambda: TransitionBlock(compression=1.5), "compression=1.5"),
        (lambda: SqueezeExcite(ratio=0), "ratio=0"),
        (lambda: MBConvBlock(16, se_ratio=2.0), "se_ratio=2.0"),
        (lambda: MBConvBlock(16, expand_ratio=0), "expand_ratio=0"),
        (lambda: MBConvBlock(16, drop_rate=-0.1), "drop_rate=-0.1"),
        (lambda: ResidualBlock(8, norm_momentum=1.0), "norm_momentum=1.0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        InceptionBlock(2, 2, 2),
        ResidualBlock(4),
        DenseBlock(2, 2),
        TransitionBlock(),
        SqueezeExcite(),
        MBConvBlock(4),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_wrong_rank_is_refused(layer):
    with pytest.raises(
        ValueError, match=r"expects a 4D input.*input_shape=\(None, 8, 3\)"
    ):
        layer(keras.Input((8, 3)))


def test_unknown_channels_are_refused():
    with pytest.raises(ValueError, match="known number of channels"):
        ResidualBlock(4).build((None, 8, 8, None))
