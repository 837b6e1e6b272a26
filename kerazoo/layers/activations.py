"""Activations written for the graph optimizer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerazoo")
def swish(x):
    """Swish (SiLU), `x * sigmoid(x)`, written out as that product.

    The same function as `keras.activations.silu`, for inference graphs: on
    TensorFlow, Keras's silu is `tf.nn.silu`, which multiplies its input by
    a `beta` and carries a custom gradient, and TensorFlow's graph optimizer
    then does not recognise convolution + bias + swish; written out, oneDNN
    runs the swish inside the convolution's kernel. `fold_batch_norms` puts it
    in place of silu in the models it returns. Train with Keras's silu, whose
    custom gradient keeps less memory.

    >>> import numpy as np
    >>> x = np.array([-1.0, 0.0, 2.0], "float32")
    >>> np.allclose(swish(x), keras.activations.silu(x))
    True
    """
    x = ops.convert_to_tensor(x)
    return x * ops.sigmoid(x)
