"""Checks that every kerazoo layer must pass, in the spirit of Keras's own
`run_layer_test`.

`run_layer_test` runs them all; each check is also a function of its own, so a
test can run one with particular arguments. Nothing here imports TensorFlow
unless the SavedModel check runs under the TensorFlow backend.
"""

import os
import tempfile

import keras
import numpy as np


def _random_inputs(input_shape, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=input_shape).astype("float32")


def _as_numpy(x):
    return keras.ops.convert_to_numpy(x)


def check_config_round_trip(layer):
    """`get_config`/`from_config` and Keras serialization give the same config."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config, (
        f"{type(layer).__name__}.from_config(get_config()) changed the config:\n"
        f"{config}\n!=\n{clone.get_config()}"
    )
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(layer), (
        f"deserialization gave {type(restored).__name__}: is the class registered?"
    )
    assert restored.get_config() == config
    return clone


def check_build(
    layer,
    input_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_params=None,
):
    """Builds `layer` and checks its weight and parameter counts."""
    layer.build(input_shape)
    assert layer.built
    counts = {
        "trainable weights": (
            len(layer.trainable_weights),
            expected_num_trainable_weights,
        ),
        "non-trainable weights": (
            len(layer.non_trainable_weights),
            expected_num_non_trainable_weights,
        ),
        "parameters": (layer.count_params(), expected_num_params),
    }
    for what, (got, expected) in counts.items():
        if expected is not None:
            assert got == expected, (
                f"{type(layer).__name__}: expected {expected} {what}, got {got}"
            )
    return layer


def check_output_shapes(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_output_dtype="float32",
    seed=0,
):
    """Symbolic (`keras.Input`) and eager calls agree with `compute_output_shape`.

    The symbolic check uses an unknown batch size, the eager one the batch of
    `input_shape`.
    """
    expected = tuple(expected_output_shape)
    layer = layer_cls(**init_kwargs)
    symbolic = layer(keras.Input(shape=input_shape[1:]))
    assert tuple(symbolic.shape) == (None, *expected[1:]), (
        f"symbolic output shape {tuple(symbolic.shape)} != {(None, *expected[1:])}"
    )
    assert keras.backend.standardize_dtype(symbolic.dtype) == expected_output_dtype
    computed = tuple(layer.compute_output_shape((None, *input_shape[1:])))
    assert computed == (None, *expected[1:]), (
        f"compute_output_shape gave {computed}, expected {(None, *expected[1:])}"
    )

    eager_layer = layer_cls(**init_kwargs)
    x = _random_inputs(input_shape, seed)
    for training in (False, True):
        y = eager_layer(x, training=training)
        assert tuple(y.shape) == expected, (
            f"eager output shape (training={training}) {tuple(y.shape)} != {expected}"
        )
        assert keras.backend.standardize_dtype(y.dtype) == expected_output_dtype
        assert np.all(np.isfinite(_as_numpy(y)))


def _model_around(layer, input_shape):
    inputs = keras.Input(shape=input_shape[1:])
    return keras.Model(inputs, layer(inputs))


def check_fit_step(layer_cls, init_kwargs, input_shape, seed=0):
    """One `fit` step runs, gives a finite loss and moves every trainable weight."""
    layer = layer_cls(**init_kwargs)
    model = _model_around(layer, input_shape)
    x = _random_inputs(input_shape, seed)
    y = _random_inputs((input_shape[0], *model.output.shape[1:]), seed + 1)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=False)
    before = [_as_numpy(w).copy() for w in layer.trainable_weights]
    history = model.fit(x, y, batch_size=input_shape[0], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for w, old in zip(layer.trainable_weights, before, strict=True):
        assert not np.array_equal(_as_numpy(w), old), (
            f"trainable weight {w.path} did not change after a fit step"
        )


def check_mixed_precision(layer_cls, init_kwargs, input_shape, seed=0):
    """Under `mixed_float16`: float32 variables, float16 outputs, finite values."""
    layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
    y = layer(_random_inputs(input_shape, seed), training=True)
    for w in layer.weights:
        assert keras.backend.standardize_dtype(w.dtype) == "float32", (
            f"{w.path} is {w.dtype} under mixed_float16; variables must be float32"
        )
    assert keras.backend.standardize_dtype(y.dtype) == "float16", (
        f"output is {y.dtype} under mixed_float16, expected float16"
    )
    assert np.all(np.isfinite(_as_numpy(y)))


def check_keras_save_load(layer_cls, init_kwargs, input_shape, seed=0):
    """A model around the layer survives `.keras` save and safe-mode load exactly."""
    model = _model_around(layer_cls(**init_kwargs), input_shape)
    x = _random_inputs(input_shape, seed)
    # Move batch-norm statistics away from their initial values, so that a loader
    # that forgets non-trainable weights is caught.
    model(x, training=True)
    expected = _as_numpy(model(x, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(_as_numpy(loaded(x, training=False)), expected)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(_as_numpy(a), _as_numpy(b))


def check_saved_model_export(layer_cls, init_kwargs, input_shape, seed=0, atol=1e-6):
    """`model.export` and `tf.saved_model.load` reproduce the Keras outputs.

    Runs under the TensorFlow backend only; returns False (checked nothing)
    otherwise. The tolerance is not zero because TensorFlow's graph rewrites
    reorder floating-point operations: outputs differ in the last bits (about
    5e-7 seen on a residual block), never more.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    model = _model_around(layer_cls(**init_kwargs), input_shape)
    x = _random_inputs(input_shape, seed)
    model(x, training=True)
    expected = _as_numpy(model(x, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "export")
        model.export(path, format="tf_saved_model", verbose=False)
        reloaded = tf.saved_model.load(path)
        got = reloaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    return True


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_params=None,
    expected_output_dtype="float32",
    run_training=True,
    run_mixed_precision=True,
    run_saving=True,
    seed=0,
):
    """Runs every check of this module on `layer_cls(**init_kwargs)`.

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        input_shape: Input shape including the batch size.
        expected_output_shape: Output shape including the batch size.
        expected_num_trainable_weights: Number of trainable variables, or None to
            skip that check.
        expected_num_non_trainable_weights: Number of non-trainable variables.
        expected_num_params: Total parameter count (`count_params()`).
        expected_output_dtype: Output dtype under the float32 policy.
        run_training: Whether to run one `fit` step.
        run_mixed_precision: Whether to run the `mixed_float16` check.
        run_saving: Whether to run the `.keras` and SavedModel checks.
        seed: Seed of the random inputs.
    """
    check_config_round_trip(layer_cls(**init_kwargs))
    check_build(
        layer_cls(**init_kwargs),
        input_shape,
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        expected_num_params,
    )
    check_output_shapes(
        layer_cls,
        init_kwargs,
        input_shape,
        expected_output_shape,
        expected_output_dtype,
        seed,
    )
    if run_training:
        check_fit_step(layer_cls, init_kwargs, input_shape, seed)
    if run_mixed_precision:
        check_mixed_precision(layer_cls, init_kwargs, input_shape, seed)
    if run_saving:
        check_keras_save_load(layer_cls, init_kwargs, input_shape, seed)
        check_saved_model_export(layer_cls, init_kwargs, input_shape, seed)
