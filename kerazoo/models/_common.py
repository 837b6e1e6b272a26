"""Pieces every family builds with."""

import keras

from kerazoo.layers import BatchNormalization
from kerazoo.models.scoped import scoped_model


def stage(name, build_fn, x):
    """Runs `build_fn` as a nested `ScopedModel` named `name` on tensor(s) `x`.

    The nested model's inputs take the dtype of `x`: a float32 input would make
    a mixed-precision network cast every activation entering a stage to float32
    and back (both ways again in the backward pass)."""
    if isinstance(x, (list, tuple)):
        inputs = [keras.Input(t.shape[1:], dtype=t.dtype) for t in x]
    else:
        inputs = keras.Input(x.shape[1:], dtype=x.dtype)
    return scoped_model(name, build_fn, inputs)(x)


def conv_bn_act(
    x,
    filters,
    kernel_size,
    strides=1,
    name="conv",
    activation="relu",
    batch_norm=True,
    epsilon=1e-3,
    momentum=0.99,
    kernel_initializer="he_normal",
    padding="same",
):
    """Convolution (no bias when batch norm follows), batch norm and
    activation."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=not batch_norm,
        kernel_initializer=kernel_initializer,
        name=name,
    )(x)
    if batch_norm:
        x = BatchNormalization(epsilon=epsilon, momentum=momentum, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x
