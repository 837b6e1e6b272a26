import keras

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import BlockMixin
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import spatial_output_shape


@register
class DenseBlock(BlockMixin, keras.layers.Layer):
    """A DenseNet block: every layer sees the concatenation of all earlier maps.

    Layer `i` computes BN - act - 1x1 conv (`bottleneck_width * growth_rate`) -
    BN - act - 3x3 conv (`growth_rate`) on the concatenation of the block input and
    the outputs of layers `0..i-1` (DenseNet-B; without `bottleneck` only
    BN - act - 3x3 conv), and its `growth_rate` new channels are concatenated on.
    The skip connection concatenates where a residual block adds, so the output has
    `input_channels + num_layers * growth_rate` channels.

    Args:
        num_layers: Number of layers in the block.
        growth_rate: Channels each layer adds (k in the paper).
        bottleneck: Whether each layer starts with the 1x1 bottleneck convolution.
        bottleneck_width: Multiple of `growth_rate` the bottleneck produces (4).
        dropout_rate: Dropout after each convolution, in [0, 1).
        activation: The activation.
        kernel_initializer: Initializer of the convolution kernels.
        kernel_regularizer: Optional regularizer of the convolution kernels.
        norm_momentum: Momentum of the batch norms.
        norm_epsilon: Epsilon of the batch norms (`keras.applications.DenseNet`
            uses 1.001e-5).
        data_format: `"channels_last"` or `"channels_first"`; default from
            `keras.config.image_data_format()`.
        **kwargs: Base layer arguments.

    Example:

    >>> block = DenseBlock(num_layers=6, growth_rate=32)
    >>> block(keras.Input((56, 56, 64))).shape
    (None, 56, 56, 256)

    Reference:
        Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
    """

    def __init__(
        self,
        num_layers,
        growth_rate,
        bottleneck=True,
        bottleneck_width=4,
        dropout_rate=0.0,
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.growth_rate = check_positive_int("growth_rate", growth_rate)
        self.bottleneck = bool(bottleneck)
        self.bottleneck_width = check_positive_int("bottleneck_width", bottleneck_width)
        self.dropout_rate = check_fraction("dropout_rate", dropout_rate)
        self._set_common(
            activation,
            kernel_initializer,
            kernel_regularizer,
            norm_momentum,
            norm_epsilon,
            data_format,
        )

        self.dense_layers = []
        for i in range(num_layers):
            units = []
            if bottleneck:
                units += [
                    self._norm(name=f"layer{i + 1}_bn1"),
                    self._act(name=f"layer{i + 1}_act1"),
                    self._conv(
                        bottleneck_width * growth_rate, 1, name=f"layer{i + 1}_conv1"
                    ),
                ]
                units += self._dropout(f"layer{i + 1}_drop1")
            units += [
                self._norm(name=f"layer{i + 1}_bn2"),
                self._act(name=f"layer{i + 1}_act2"),
                self._conv(growth_rate, 3, name=f"layer{i + 1}_conv2"),
            ]
            units += self._dropout(f"layer{i + 1}_drop2")
            self.dense_layers.append(units)
        self.concats = [
            keras.layers.Concatenate(
                axis=self._channel_axis,
                dtype=self.dtype_policy,
                name=f"layer{i + 1}_concat",
            )
            for i in range(num_layers)
        ]

    def _dropout(self, name):
        if not self.dropout_rate:
            return []
        return [
            keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy, name=name)
        ]

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        shape = tuple(input_shape)
        for units, concat in zip(self.dense_layers, self.concats, strict=True):
            inner = shape
            for layer in units:
                layer.build(inner)
                inner = layer.compute_output_shape(inner)
            concat.build([shape, inner])
            channels += self.growth_rate
            shape = spatial_output_shape(shape, channels, 1, self.data_format)

    def call(self, inputs, training=None):
        x = inputs
        for units, concat in zip(self.dense_layers, self.concats, strict=True):
            y = x
            for layer in units:
                y = layer(y, training=training)
            x = concat([x, y])
        return x

    def compute_output_shape(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        return spatial_output_shape(
            input_shape,
            channels + self.num_layers * self.growth_rate,
            1,
            self.data_format,
        )

    def get_config(self):
        config = {
            "num_layers": self.num_layers,
            "growth_rate": self.growth_rate,
            "bottleneck": self.bottleneck,
            "bottleneck_width": self.bottleneck_width,
            "dropout_rate": self.dropout_rate,
            **self._common_config(),
        }
        return {**super().get_config(), **config}
