import keras
import numpy as np
import pytest

from kerazoo.layers import GroupNormalization
from kerazoo.layers import InstanceNormalization
from kerazoo.layers import LayerNormalization
from kerazoo.testing import run_layer_test

ATOL = 1e-5


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32")


def _randomise_affine(ours, theirs, seed=1):
    rng = np.random.default_rng(seed)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)


def _assert_same(ours, theirs, shape):
    ours.build(shape)
    theirs.build(shape)
    _randomise_affine(ours, theirs)
    x = _inputs(shape)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)),
        keras.ops.convert_to_numpy(theirs(x)),
        atol=ATOL,
    )


@pytest.mark.parametrize(
    "groups, axis, shape",
    [
        (4, -1, (1, 5, 5, 8)),  # batch size 1
        (4, -1, (3, 5, 5, 8)),
        (2, 1, (2, 8, 5, 5)),
        (1, -1, (2, 4, 4, 6)),
        (-1, -1, (1, 4, 4, 6)),
        (3, -1, (2, 7, 6)),
    ],
)
def test_group_norm_matches_keras(groups, axis, shape):
    _assert_same(
        GroupNormalization(groups=groups, axis=axis),
        keras.layers.GroupNormalization(groups=groups, axis=axis),
        shape,
    )


def test_group_norm_harness_at_batch_size_one():
    run_layer_test(
        GroupNormalization,
        {"groups": 4},
        input_shape=(1, 5, 5, 8),
        expected_output_shape=(1, 5, 5, 8),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_num_params=16,
    )


def test_group_norm_statistics_per_group():
    x = _inputs((2, 3, 3, 4))
    y = keras.ops.convert_to_numpy(GroupNormalization(groups=2, epsilon=1e-6)(x))
    grouped = y.reshape(2, 9, 2, 2)
    np.testing.assert_allclose(grouped.mean(axis=(1, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(grouped.std(axis=(1, 3)), 1.0, atol=1e-4)


def test_group_norm_dynamic_spatial_size():
    layer = GroupNormalization(groups=2)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    for size in (3, 5):
        assert model(_inputs((2, size, size, 4))).shape == (2, size, size, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"groups": 0}, "groups=0"),
        ({"groups": 2.5}, "groups=2.5"),
        ({"axis": None}, "axis=None"),
    ],
)
def test_group_norm_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupNormalization(**kwargs)


def test_groups_must_divide_channels():
    with pytest.raises(
        ValueError,
        match=r"divide the number of channels \(6\).*"
        r"groups=4",
    ):
        GroupNormalization(groups=4).build((1, 3, 3, 6))


def test_instance_norm_is_one_group_per_channel():
    _assert_same(
        InstanceNormalization(),
        keras.layers.GroupNormalization(groups=-1),
        (1, 6, 6, 5),
    )
    x = _inputs((2, 6, 6, 3))
    y = keras.ops.convert_to_numpy(InstanceNormalization(epsilon=1e-6)(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-4)


def test_instance_norm_harness():
    run_layer_test(
        InstanceNormalization,
        {},
        input_shape=(1, 4, 4, 3),
        expected_output_shape=(1, 4, 4, 3),
        expected_num_params=6,
    )
    assert "groups" not in InstanceNormalization().get_config()
    with pytest.raises(ValueError, match="groups=2"):
        InstanceNormalization(groups=2)


@pytest.mark.parametrize(
    "axis, shape", [(-1, (2, 5, 8)), ([1, 2], (2, 5, 8)), ([-3, -2, -1], (2, 3, 3, 4))]
)
def test_layer_norm_matches_keras(axis, shape):
    _assert_same(
        LayerNormalization(axis=axis), keras.layers.LayerNormalization(axis=axis), shape
    )


def test_layer_norm_harness():
    run_layer_test(
        LayerNormalization,
        {"axis": -1},
        input_shape=(2, 4, 4, 6),
        expected_output_shape=(2, 4, 4, 6),
        expected_num_params=12,
    )


def test_layer_norm_bad_axis():
    with pytest.raises(ValueError, match="axis='last'"):
        LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="axis=3"):
        LayerNormalization(axis=3).build((2, 5, 8))
