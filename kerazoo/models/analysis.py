"""Counting a model's parameters and floating-point operations."""

import numpy as np


def count_trainable_params(model):
    """Trainable parameters (what the papers' tables count)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def flops(model, input_shape=None):
    """Floating-point operations of one forward pass on one image.

    Counted by TensorFlow's profiler on the traced inference graph, which
    counts a multiply and an add as two operations (so this is about twice the
    "multiply-adds" that papers quote). TensorFlow backend only.

    Args:
        model: A Keras model with one image input.
        input_shape: `(height, width, channels)`; default: the model's.

    Returns:
        The number of floating-point operations, an int.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "Counting FLOPs uses TensorFlow's profiler: run with the TensorFlow "
            f"backend. Backend: {keras.backend.backend()}"
        )
    import tensorflow as tf

    shape = tuple(input_shape or model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"Give a full `input_shape`; the model's is {shape}.")

    @tf.function
    def forward(x):
        return model(x, training=False)

    graph = forward.get_concrete_function(tf.TensorSpec((1, *shape), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(
        tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    )
