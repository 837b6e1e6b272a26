"""Drawing a built model's kernels again from an initializer: training a zoo
architecture from scratch with the initialization the user (or a search)
chooses."""

import keras

from kerazoo._compat import sublayers
from kerazoo.initializers.names import get


def reinitialize(model, initializer):
    """Draws every convolution and dense kernel of `model` from `initializer`
    and zeroes their biases; normalization layers keep their own.

    A depthwise kernel `(kh, kw, C, 1)` is drawn as `(kh, kw, 1, C)` and
    transposed, so that its fan-in is `kh * kw` (each output channel sees one
    input channel), not `kh * kw * C`.

    Args:
        model: A built Keras model or layer.
        initializer: A name (`"he_normal"`, ...) or an initializer.

    Returns:
        The number of kernels drawn.

    Example:

    >>> from kerazoo.models import create_model
    >>> model = create_model("resnet20", weights=None)
    >>> reinitialize(model, "he_normal")
    20
    """
    initializer = get(initializer)
    count = 0
    for layer in sublayers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, channels, multiplier = layer.kernel.shape
            value = initializer((kh, kw, multiplier, channels))
            value = keras.ops.transpose(value, (0, 1, 3, 2))
        elif isinstance(
            layer,
            (
                keras.layers.Conv1D,
                keras.layers.Conv2D,
                keras.layers.Conv3D,
                keras.layers.Dense,
            ),
        ):
            value = initializer(tuple(layer.kernel.shape))
        else:
            continue
        layer.kernel.assign(keras.ops.cast(value, layer.kernel.dtype))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(keras.ops.zeros(layer.bias.shape, layer.bias.dtype))
        count += 1
    return count
