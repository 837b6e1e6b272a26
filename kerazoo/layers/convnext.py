import keras

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import standardize_data_format
from kerazoo.layers.layer_normalization import LayerNormalization


@register
class ConvNeXtBlock(keras.layers.Layer):
    """The ConvNeXt block: a `kernel_size` depthwise convolution (with bias),
    layer norm, a pointwise MLP (`Dense` to `expansion * channels`, GELU,
    `Dense` back), a learnable per-channel layer scale, stochastic depth, and
    the input added back. The output has the input's shape.

    The pointwise convolutions are `Dense` layers on the channel axis, as in
    the official implementation and keras.applications; the children are named
    as keras.applications' (`depthwise_conv`, `layernorm`, `pointwise_conv_1`,
    `pointwise_conv_2`; the layer scale is the block's variable
    `layer_scale`), so that its ConvNeXt weights map one for one (Keras's
    depthwise convolution is a grouped `Conv2D`, whose kernel is this one's
    with the last two axes swapped).

    Stochastic depth drops the whole residual branch of an example with
    probability `drop_path_rate` in training, scaling the kept ones by
    `1 / (1 - drop_path_rate)` (a `Dropout` with one mask value per example,
    as `MBConvBlock`'s); at inference it is the identity.

    Args:
        drop_path_rate: Stochastic-depth rate of the residual branch, in
            [0, 1).
        layer_scale_init_value: Initial value of the layer scale `gamma`
            (the paper's 1e-6), or None for no layer scale.
        kernel_size: Size of the depthwise kernel (7 in ConvNeXt).
        expansion: Width of the MLP's hidden layer, in input channels (4).
        norm_epsilon: Epsilon of the layer norm (1e-6, as the weights).
        kernel_initializer: Initializer of the convolution and dense kernels.
        kernel_regularizer: Optional regularizer of those kernels.
        data_format: `"channels_last"` only (the pointwise layers act on the
            last axis); default from `keras.config.image_data_format()`.
        **kwargs: Base layer arguments.

    Example:

    >>> block = ConvNeXtBlock(drop_path_rate=0.1)
    >>> block(keras.Input((56, 56, 96))).shape
    (None, 56, 56, 96)

    Reference:
        Liu et al., "A ConvNet for the 2020s", CVPR 2022.
        Touvron et al., "Going deeper with Image Transformers", ICCV 2021
        (layer scale).
    """

    def __init__(
        self,
        drop_path_rate=0.0,
        layer_scale_init_value=1e-6,
        kernel_size=7,
        expansion=4,
        norm_epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.drop_path_rate = check_fraction("drop_path_rate", drop_path_rate)
        if layer_scale_init_value is not None:
            check_positive("layer_scale_init_value", layer_scale_init_value)
        self.layer_scale_init_value = layer_scale_init_value
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.expansion = check_positive_int("expansion", expansion)
        self.norm_epsilon = check_positive("norm_epsilon", norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.data_format = standardize_data_format(data_format)
        if self.data_format != "channels_last":
            raise ValueError(
                "ConvNeXtBlock's pointwise layers act on the last axis: it "
                "needs data_format='channels_last'. "
                f"Received: data_format={data_format!r}"
            )

        self.depthwise = keras.layers.DepthwiseConv2D(
            kernel_size,
            padding="same",
            use_bias=True,
            depthwise_initializer=self._initializer(),
            depthwise_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="depthwise_conv",
        )
        self.norm = LayerNormalization(
            epsilon=norm_epsilon, dtype=self.dtype_policy, name="layernorm"
        )
        self.act = keras.layers.Activation("gelu", dtype=self.dtype_policy, name="gelu")
        self.drop = None
        if self.drop_path_rate:
            self.drop = keras.layers.Dropout(
                self.drop_path_rate,
                noise_shape=(None, 1, 1, 1),
                dtype=self.dtype_policy,
                name="stochastic_depth",
            )
        # Sized by the input channels: made in build().
        self.expand = None
        self.project = None
        self.gamma = None

    def _initializer(self):
        # A fresh initializer per child: a shared seeded one would give every
        # kernel the same values.
        return keras.initializers.get(
            keras.initializers.serialize(self.kernel_initializer)
        )

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            kernel_initializer=self._initializer(),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        shape = tuple(input_shape)
        self.depthwise.build(shape)
        self.norm.build(shape)
        self.expand = self._dense(self.expansion * channels, "pointwise_conv_1")
        self.expand.build(shape)
        self.project = self._dense(channels, "pointwise_conv_2")
        self.project.build((*shape[:-1], self.expansion * channels))
        if self.layer_scale_init_value is not None:
            self.gamma = self.add_weight(
                shape=(channels,),
                initializer=keras.initializers.Constant(self.layer_scale_init_value),
                trainable=True,
                name="layer_scale",
            )

    def call(self, inputs, training=None):
        x = self.norm(self.depthwise(inputs))
        x = self.project(self.act(self.expand(x)))
        if self.gamma is not None:
            x = x * self.gamma
        if self.drop is not None:
            x = self.drop(x, training=training)
        return inputs + x

    def compute_output_shape(self, input_shape):
        check_image_input(self, input_shape, self.data_format)
        return tuple(input_shape)

    def get_config(self):
        config = {
            "drop_path_rate": self.drop_path_rate,
            "layer_scale_init_value": self.layer_scale_init_value,
            "kernel_size": self.kernel_size,
            "expansion": self.expansion,
            "norm_epsilon": self.norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "data_format": self.data_format,
        }
        return {**super().get_config(), **config}
