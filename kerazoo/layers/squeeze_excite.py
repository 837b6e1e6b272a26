import keras
from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import channel_axis
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import standardize_data_format


@register
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excitation: channels reweighted by a gate computed from the
    whole image.

    Global average pooling squeezes each channel to one number; a 1x1 conv reduces
    them to `squeeze_filters` (default `max(1, int(channels * ratio))`), the
    activation follows, a second 1x1 conv restores the channel count, and the
    gate activation (sigmoid) turns the result into per-channel weights that
    multiply the input. Shape in = shape out.

    Args:
        ratio: Fraction of the input channels the squeeze keeps, in (0, 1].
        squeeze_filters: Explicit number of squeeze channels, overriding `ratio`.
            EfficientNet computes them from the block's input channels, before
            expansion.
        activation: Activation after the squeeze.
        gate_activation: Activation of the gate.
        kernel_initializer: Initializer of the two 1x1 kernels.
        data_format: `"channels_last"` or `"channels_first"`; default from
            `keras.config.image_data_format()`.
        **kwargs: Base layer arguments.

    Example:

    >>> se = SqueezeExcite(ratio=0.25)
    >>> se(keras.Input((14, 14, 64))).shape
    (None, 14, 14, 64)

    Reference:
        Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
    """

    def __init__(
        self,
        ratio=0.25,
        squeeze_filters=None,
        activation="relu",
        gate_activation="sigmoid",
        kernel_initializer="glorot_uniform",
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ratio = check_fraction(
            "ratio", ratio, low_inclusive=False, high_inclusive=True
        )
        self.squeeze_filters = check_positive_int(
            "squeeze_filters", squeeze_filters, allow_none=True
        )
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = standardize_data_format(data_format)
        self._channel_axis = channel_axis(self.data_format)
        self._spatial_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        # Their sizes depend on the input channels: made in build().
        self.reduce = None
        self.expand = None

    def _conv(self, filters, activation, name):
        return keras.layers.Conv2D(
            filters,
            1,
            activation=activation,
            data_format=self.data_format,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        squeeze = self.squeeze_filters or max(1, int(channels * self.ratio))
        pooled = list(input_shape)
        for axis in self._spatial_axes:
            pooled[axis] = 1
        self.reduce = self._conv(squeeze, self.activation, "reduce")
        self.reduce.build(tuple(pooled))
        self.expand = self._conv(channels, self.gate_activation, "expand")
        self.expand.build(self.reduce.compute_output_shape(tuple(pooled)))

    def call(self, inputs):
        s = ops.mean(inputs, axis=self._spatial_axes, keepdims=True)
        return inputs * self.expand(self.reduce(s))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "ratio": self.ratio,
            "squeeze_filters": self.squeeze_filters,
            "activation": keras.activations.serialize(self.activation),
            "gate_activation": keras.activations.serialize(self.gate_activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "data_format": self.data_format,
        }
        return {**super().get_config(), **config}
