import keras
import numpy as np
import pytest

from kerazoo.layers import BatchNormalization
from kerazoo.testing import run_layer_test

ATOL = 1e-5


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(3.0, 2.0, size=shape).astype("float32")


def test_layer_harness():
    run_layer_test(
        BatchNormalization,
        {"momentum": 0.9},
        input_shape=(4, 5, 5, 3),
        expected_output_shape=(4, 5, 5, 3),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
        expected_num_params=4 * 3,
    )


def _pair(**kwargs):
    ours = BatchNormalization(**kwargs)
    theirs = keras.layers.BatchNormalization(**kwargs)
    return ours, theirs


def _same_start(ours, theirs, shape, seed=1):
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(seed)
    # Non-default gamma and beta, so that a mistake in using them shows.
    for name in ("gamma", "beta"):
        if hasattr(theirs, name) and getattr(theirs, name) is not None:
            value = rng.normal(size=getattr(theirs, name).shape).astype("float32")
            getattr(ours, name).assign(value)
            getattr(theirs, name).assign(value)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (8, 6, 6, 4)),
        ({"momentum": 0.9, "epsilon": 1e-5}, (8, 6, 6, 4)),
        ({"axis": 1}, (8, 4, 6, 6)),
        ({"center": False, "scale": False}, (16, 5)),
        (
            {
                "renorm": True,
                "renorm_clipping": {"rmax": 1.5, "rmin": 0.5, "dmax": 0.5},
                "momentum": 0.8,
                "renorm_momentum": 0.7,
            },
            (8, 6, 6, 4),
        ),
    ],
)
def test_matches_keras_batch_normalization(kwargs, shape):
    ours, theirs = _pair(**kwargs)
    _same_start(ours, theirs, shape)
    for step in range(5):
        x = _inputs(shape, seed=step)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(x, training=True)),
            keras.ops.convert_to_numpy(theirs(x, training=True)),
            atol=ATOL,
            err_msg=f"training output, step {step}",
        )
    np.testing.assert_allclose(
        ours.moving_mean.numpy(), theirs.moving_mean.numpy(), atol=ATOL
    )
    np.testing.assert_allclose(
        ours.moving_variance.numpy(), theirs.moving_variance.numpy(), atol=ATOL
    )
    # The statistics really moved: the comparison above is not of initial values.
    assert np.abs(ours.moving_mean.numpy()).min() > 0.1
    x = _inputs(shape, seed=99)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x, training=False)),
        keras.ops.convert_to_numpy(theirs(x, training=False)),
        atol=ATOL,
    )


def test_training_output_is_normalised():
    x = _inputs((64, 3))
    y = keras.ops.convert_to_numpy(BatchNormalization(epsilon=1e-6)(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-4)


def test_moving_average_formula():
    layer = BatchNormalization(momentum=0.75)
    x = _inputs((32, 2))
    layer(x, training=True)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.25 * x.mean(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.75 + 0.25 * x.var(axis=0), rtol=1e-5
    )


def test_frozen_layer_runs_in_inference_mode_and_changes_nothing():
    shape = (8, 6, 6, 4)
    ours, theirs = _pair(momentum=0.5)
    _same_start(ours, theirs, shape)
    for layer in (ours, theirs):
        layer(_inputs(shape, seed=5), training=True)
        layer.trainable = False
    before = [w.numpy().copy() for w in ours.weights]
    x = _inputs(shape, seed=6)
    y = keras.ops.convert_to_numpy(ours(x, training=True))
    np.testing.assert_allclose(
        y, keras.ops.convert_to_numpy(ours(x, training=False)), atol=0
    )
    np.testing.assert_allclose(
        y, keras.ops.convert_to_numpy(theirs(x, training=True)), atol=ATOL
    )
    for w, old in zip(ours.weights, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), old)


def test_frozen_layer_in_fit_keeps_statistics_bit_identical():
    inputs = keras.Input((4,))
    bn = BatchNormalization(momentum=0.5)
    outputs = keras.layers.Dense(1)(bn(inputs))
    model = keras.Model(inputs, outputs)
    x, y = _inputs((32, 4)), _inputs((32, 1), seed=3)
    bn(x, training=True)  # statistics away from their initial values
    bn.trainable = False
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    before = [w.numpy().copy() for w in bn.weights]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for w, old in zip(bn.weights, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), old)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": 1.5}, "momentum=1.5"),
        ({"epsilon": 0.0}, "epsilon=0.0"),
        ({"axis": "channels"}, "axis='channels'"),
        ({"renorm": True, "renorm_clipping": {"rmaxx": 2}}, "renorm_clipping"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNormalization(**kwargs)


def test_axis_out_of_range_is_refused_at_build():
    with pytest.raises(ValueError, match="axis=4"):
        BatchNormalization(axis=4).build((2, 3, 3, 5))
