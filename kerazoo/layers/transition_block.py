import keras

from kerazoo._checks import check_fraction
from kerazoo.api import register
from kerazoo.layers._utils import BlockMixin
from kerazoo.layers._utils import check_image_input


@register
class TransitionBlock(BlockMixin, keras.layers.Layer):
    """The DenseNet transition between dense blocks: BN - act - 1x1 conv - 2x2 avg pool.

    The 1x1 convolution keeps `floor(compression * input_channels)` channels
    (DenseNet-C; `compression=1.0` keeps them all) and the average pool halves the
    height and width.

    Args:
        compression: Fraction of the channels kept, in (0, 1].
        activation: The activation.
        kernel_initializer: Initializer of the convolution kernel.
        kernel_regularizer: Optional regularizer of the convolution kernel.
        norm_momentum: Momentum of the batch norm.
        norm_epsilon: Epsilon of the batch norm.
        data_format: `"channels_last"` or `"channels_first"`; default from
            `keras.config.image_data_format()`.
        **kwargs: Base layer arguments.

    Example:

    >>> block = TransitionBlock(compression=0.5)
    >>> block(keras.Input((56, 56, 256))).shape
    (None, 28, 28, 128)

    Reference:
        Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
    """

    def __init__(
        self,
        compression=0.5,
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.compression = check_fraction(
            "compression", compression, low_inclusive=False, high_inclusive=True
        )
        self._set_common(
            activation,
            kernel_initializer,
            kernel_regularizer,
            norm_momentum,
            norm_epsilon,
            data_format,
        )
        self.norm = self._norm(name="bn")
        self.act = self._act(name="act")
        self.pool = keras.layers.AveragePooling2D(
            2,
            strides=2,
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name="pool",
        )
        # The filters depend on the input channels: made in build().
        self.conv = None

    def _output_channels(self, channels):
        return max(1, int(channels * self.compression))

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        shape = tuple(input_shape)
        self.norm.build(shape)
        self.conv = self._conv(self._output_channels(channels), 1, name="conv")
        self.conv.build(shape)
        self.pool.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = self.act(self.norm(inputs, training=training))
        return self.pool(self.conv(x))

    def compute_output_shape(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        shape = list(input_shape)
        shape[self._channel_axis] = self._output_channels(channels)
        # 2x2 "valid" pooling with stride 2 floors odd sizes.
        spatial = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for i in spatial:
            shape[i] = None if shape[i] is None else shape[i] // 2
        return tuple(shape)

    def get_config(self):
        config = {"compression": self.compression, **self._common_config()}
        return {**super().get_config(), **config}
