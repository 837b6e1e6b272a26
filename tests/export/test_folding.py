"""Batch-norm folding: the folded copy computes the same function with the
scale in the kernels, every block's pairs are found, and what cannot be folded
is left alone."""

import keras
import numpy as np
import pytest

from kerazoo.export import fold_batch_norms
from kerazoo.export import folding_pairs
from kerazoo.layers import BatchNormalization
from kerazoo.layers import DenseBlock
from kerazoo.layers import InceptionBlock
from kerazoo.layers import MBConvBlock
from kerazoo.layers import ResidualBlock
from kerazoo.models import create_model


def block_model(block, shape=(12, 12, 8)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, block(inputs))


def check_folded(model, expected_folded, atol=2e-5, seed=1):
    """Folds `model` (batch norms randomized first) and checks the copy."""
    before = [w.copy() for w in model.get_weights()]
    folded, report = fold_batch_norms(model)
    assert len(report.folded) == expected_folded, report.folded
    x = np.random.default_rng(seed).normal(size=(4, *model.inputs[0].shape[1:]))
    x = x.astype("float32")
    reference = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(folded(x, training=False))
    scale = max(1.0, float(np.max(np.abs(reference))))
    np.testing.assert_allclose(got, reference, atol=atol * scale)
    # The original is untouched, bit for bit.
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    return folded, report


@pytest.mark.parametrize(
    ("block", "pairs"),
    [
        (ResidualBlock(8, kind="basic"), 2),
        (ResidualBlock(4, kind="bottleneck", strides=2), 4),  # with projection
        (MBConvBlock(16, expand_ratio=6, se_ratio=0.25, strides=2), 3),
        (MBConvBlock(8, expand_ratio=1, kernel_size=5), 2),  # no expansion
        (
            InceptionBlock(
                4,
                6,
                2,
                filters_3x3_reduce=3,
                filters_5x5_reduce=2,
                filters_pool_proj=2,
                batch_norm=True,
            ),
            6,
        ),
    ],
)
def test_every_blocks_pairs_fold_to_the_same_function(
    block, pairs, tmp_path, randomize
):
    folded, _ = check_folded(randomize(block_model(block)), pairs)
    # The block's config says it is folded: it saves and loads as it is.
    assert folded.layers[-1].get_config()["folded"] is True
    folded.save(tmp_path / "block.keras")
    again = keras.saving.load_model(tmp_path / "block.keras")
    x = np.random.default_rng(5).normal(size=(2, 12, 12, 8)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x)),
        keras.ops.convert_to_numpy(folded(x)),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "block",
    [
        ResidualBlock(8, preactivation=True),  # BN before each conv
        DenseBlock(2, 4),  # BN-ReLU-conv
    ],
)
def test_norms_before_their_convolution_are_kept(block, randomize):
    folded, report = check_folded(randomize(block_model(block)), 0)
    assert report.kept and all("no convolution" in k for k in report.kept)
    assert not any(
        layer.folded
        for layer in folded._flatten_layers(recursive=True)
        if isinstance(layer, BatchNormalization)
    )


def test_functional_pairs_depthwise_multiplier_dense_bias_and_shared_outputs(
    randomize,
):
    inputs = keras.Input((10, 10, 4))
    x = keras.layers.Conv2D(6, 3, use_bias=True, name="biased")(inputs)
    x = BatchNormalization(name="bn_biased")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = BatchNormalization(name="bn_dw")(x)
    # Read by the batch norm and by the addition: cannot be folded.
    y = keras.layers.Conv2D(12, 1, use_bias=False, name="shared")(x)
    z = BatchNormalization(name="bn_shared")(y)
    x = keras.layers.Add()([y, z])
    # A convolution with its own activation: the norm does not read its
    # linear output.
    x = keras.layers.Conv2D(12, 1, activation="relu", name="relu_conv")(x)
    x = BatchNormalization(name="bn_relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="fc")(x)
    x = BatchNormalization(name="bn_fc")(x)
    model = keras.Model(inputs, x)
    _, report = check_folded(randomize(model), 3)
    names = {entry.split(" -> ")[1] for entry in report.folded}
    assert names == {"bn_biased", "bn_dw", "bn_fc"}
    assert sorted(k.split(":")[0] for k in report.kept) == ["bn_relu", "bn_shared"]


def test_conv1d_folds_and_a_norm_over_another_axis_is_kept(randomize):
    inputs = keras.Input((9, 3))
    x = keras.layers.Conv1D(5, 3, use_bias=False)(inputs)
    x = BatchNormalization()(x)
    x = keras.layers.Conv1D(5, 3, use_bias=False)(x)
    x = BatchNormalization(axis=1, name="over_time")(x)
    _, report = check_folded(randomize(keras.Model(inputs, x)), 1)
    assert report.kept == ["over_time: normalises axis 1, not the channels"]


def test_zoo_model_folds_and_the_folded_copy_saves_and_loads(tmp_path, randomize):
    model = create_model("efficientnet_b0", num_classes=7, input_shape=(64, 64, 3))
    pairs, kept = folding_pairs(model)
    # Stem, 16 blocks (the first has no expansion: 2 pairs, the others 3), top.
    assert len(pairs) == 1 + 2 + 15 * 3 + 1 and not kept
    folded, _ = check_folded(randomize(model), 49, atol=1e-5)
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    folded.save(tmp_path / "folded.keras")
    again = keras.saving.load_model(tmp_path / "folded.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x)),
        keras.ops.convert_to_numpy(folded(x)),
        atol=1e-6,
    )


def test_folded_norm_needs_center():
    with pytest.raises(ValueError, match="center=True"):
        BatchNormalization(center=False, folded=True)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's graph optimizer"
)
def test_folded_residual_blocks_fuse_into_their_convolutions():
    # A folded batch norm's offset is a BiasAdd: TensorFlow's optimizer then
    # fuses convolution, offset, residual add and ReLU into one kernel. As an
    # AddV2 it merged offset and residual into one AddN, and 14 of ResNet-50's
    # 53 convolutions ran alone.
    from kerazoo.bench import load_benchmark
    from kerazoo.testing import randomize_batch_norms

    model = randomize_batch_norms(create_model("resnet18", input_shape=(32, 32, 3)))
    folded, _ = fold_batch_norms(model)
    ops = load_benchmark("profile_ops").op_times(folded, 2, 32)
    convolutions = {op for op in ops if "Conv2D" in op}
    if not any("Mkl" in op for op in convolutions):
        pytest.skip(f"TensorFlow without oneDNN here: {sorted(convolutions)}")
    assert "AddN" not in ops
    assert all("Fused" in op for op in convolutions), sorted(ops)


def test_folded_copy_writes_swish_out():
    from kerazoo.layers import swish
    from kerazoo.testing import randomize_batch_norms

    model = randomize_batch_norms(
        create_model("efficientnet_b0", input_shape=(32, 32, 3))
    )
    folded, report = fold_batch_norms(model)
    # stem, head, and in each of 16 blocks the depthwise convolution and the
    # squeeze-excite reduction, plus the expansion of the 15 that expand.
    assert report.swish == 49
    assert "swish written out in 49 layers" in report.summary()
    activations = [
        layer.activation
        for layer in folded._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.Activation)
    ]
    assert swish in activations and keras.activations.silu not in activations
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        folded(x), model(x, training=False), rtol=1e-4, atol=1e-5
    )
    assert fold_batch_norms(create_model("resnet20"))[1].swish == 0


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's graph optimizer"
)
def test_folded_swish_fuses_into_its_convolutions():
    # Keras's silu (tf.nn.silu: a scale by beta, a custom gradient) hides
    # convolution + bias + swish from TensorFlow's optimizer; the folded
    # model's swish is written out, and oneDNN runs it inside the kernel of
    # the convolution before it.
    from kerazoo.bench import load_benchmark
    from kerazoo.testing import randomize_batch_norms

    model = randomize_batch_norms(
        create_model("efficientnet_b0", input_shape=(32, 32, 3))
    )
    folded, _ = fold_batch_norms(model)
    ops = load_benchmark("profile_ops").op_times(folded, 2, 32)
    if not any("Mkl" in op for op in ops):
        pytest.skip(f"TensorFlow without oneDNN here: {sorted(ops)}")
    # The stem, the 15 expansions and the head: fused. The 16 depthwise
    # convolutions (oneDNN fuses no swish there) and the 16 squeeze-excite
    # reductions keep theirs (with Keras's silu: all 49).
    assert ops["_MklSwish"][1] == 32, sorted(ops)
