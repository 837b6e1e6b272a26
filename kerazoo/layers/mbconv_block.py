import keras

from kerazoo._checks import check_choice
from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import BlockMixin
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import spatial_output_shape
from kerazoo.layers.squeeze_excite import SqueezeExcite

SE_FROM = ("input", "expanded")


def make_divisible(value, divisor=8):
    """`value` rounded to the nearest multiple of `divisor`, never below
    `divisor` and never more than 10% below `value` (the channel rounding of
    MobileNetV2/V3 and EfficientNet).

    >>> make_divisible(72), make_divisible(4), make_divisible(16 * 0.35)
    (72, 8, 8)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


@register
class MBConvBlock(BlockMixin, keras.layers.Layer):
    """The mobile inverted bottleneck of MobileNetV2 and EfficientNet, and the
    fused one of EfficientNetV2.

    1x1 expansion to `expand_ratio * input_channels` (skipped when the ratio is
    1) - BN - act, a `kernel_size` depthwise convolution with `strides` - BN - act,
    optional squeeze-and-excitation, then a linear 1x1 projection to `filters` -
    BN. When the stride is 1 and the channels match, the input is added back,
    after stochastic depth (the whole residual branch dropped per example with
    probability `drop_rate` in training).

    EfficientNet uses swish and SE (`se_ratio=0.25`, squeeze channels computed from
    the block's input channels); EfficientNet-Lite uses `activation="relu6"` and
    no SE (`se_ratio=None`); MobileNetV2 uses `"relu6"` and no SE. MobileNetV3
    uses `"relu"` or `"hard_swish"`, fractional expansions, and an SE with a ReLU
    and a hard-sigmoid gate whose squeeze is a quarter of the expanded width, all
    widths rounded to multiples of 8: `se_from="expanded"`, `se_activation="relu"`,
    `se_gate_activation="hard_sigmoid"`, `divisor=8`. Convolutions use
    TensorFlow's "same" padding, which pads the bottom/right more for even sizes
    at stride 2, as the published weights expect.

    With `fused=True` (EfficientNetV2's early stages) a single full
    `kernel_size` convolution with `strides` replaces the 1x1 expansion and the
    depthwise convolution: expansion - BN - act, optional squeeze-and-excitation,
    then the linear 1x1 projection - BN. With `expand_ratio=1` there is nothing
    to project from, so the block is that full convolution to `filters` - BN -
    act alone (its children are then named `project_*`).

    Args:
        filters: Output channels.
        expand_ratio: Channel expansion of the first 1x1 convolution, a
            positive number (MobileNetV3 has 4.5, 2.3, ...); 1 means no
            expansion convolution. The expanded width is `input_channels *
            expand_ratio`, rounded to an integer (by `divisor` when set).
        kernel_size: Size of the depthwise kernel (3 or 5 in EfficientNet).
        strides: Stride of the depthwise convolution.
        se_ratio: Squeeze-and-excitation ratio in (0, 1], or None for no SE.
        se_from: The width `se_ratio` applies to: `"input"`, the block's input
            channels (EfficientNet), or `"expanded"`, the depthwise
            convolution's channels (MobileNetV3).
        se_activation: Activation after the squeeze; default (None): the
            block's `activation`.
        se_gate_activation: Activation of the SE gate (`"sigmoid"`, or
            `"hard_sigmoid"` as in MobileNetV3).
        divisor: When set, the expanded and squeeze widths are rounded to a
            multiple of it with `make_divisible` (nearest multiple, never below
            `divisor` nor more than 10% down; MobileNetV3: 8). When None the
            expanded width is rounded to the nearest integer and the squeeze
            width is `max(1, int(width * se_ratio))`.
        activation: The activation (`"swish"`, `"relu6"`, `"hard_swish"`, ...).
        drop_rate: Stochastic-depth rate of the residual branch, in [0, 1).
        kernel_initializer: Initializer of the convolution kernels.
        kernel_regularizer: Optional regularizer of the convolution kernels.
        norm_momentum: Momentum of the batch norms.
        norm_epsilon: Epsilon of the batch norms.
        data_format: `"channels_last"` or `"channels_first"`; default from
            `keras.config.image_data_format()`.
        folded: Whether the block's batch norms have been folded into the
            convolutions before them (`kerazoo.export.fold_batch_norms` sets
            it): each then only adds its offset. For exported inference graphs,
            not for training.
        fused: Whether to fuse the expansion and the depthwise convolution
            into one full convolution (fused-MBConv, EfficientNetV2).
        padding: `"same"` (Keras's, the default) or `"symmetric"`: the strided
            convolution pads `kernel_size // 2` pixels on every side (an
            explicit `ZeroPadding2D`, then `"valid"`; the same variables), as
            PyTorch's `padding=k // 2` (torchvision's and timm's weights).
        **kwargs: Base layer arguments.

    Example:

    >>> block = MBConvBlock(24, expand_ratio=6, kernel_size=3, strides=2,
    ...                     se_ratio=0.25)
    >>> block(keras.Input((112, 112, 16))).shape
    (None, 56, 56, 24)
    >>> fused = MBConvBlock(48, expand_ratio=4, strides=2, fused=True)
    >>> fused(keras.Input((64, 64, 24))).shape
    (None, 32, 32, 48)

    Reference:
        Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        CVPR 2018.
        Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
        Networks", ICML 2019.
        Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML
        2021.
    """

    def __init__(
        self,
        filters,
        expand_ratio=6,
        kernel_size=3,
        strides=1,
        se_ratio=None,
        se_from="input",
        se_activation=None,
        se_gate_activation="sigmoid",
        divisor=None,
        activation="swish",
        drop_rate=0.0,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        data_format=None,
        folded=False,
        fused=False,
        padding="same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        check_positive("expand_ratio", expand_ratio)
        self.expand_ratio = expand_ratio
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.strides = check_positive_int("strides", strides)
        if se_ratio is not None:
            check_fraction(
                "se_ratio", se_ratio, low_inclusive=False, high_inclusive=True
            )
        self.se_ratio = se_ratio
        self.se_from = check_choice("se_from", se_from, SE_FROM)
        self.se_activation = (
            None if se_activation is None else keras.activations.get(se_activation)
        )
        self.se_gate_activation = keras.activations.get(se_gate_activation)
        self.divisor = check_positive_int("divisor", divisor, allow_none=True)
        self.drop_rate = check_fraction("drop_rate", drop_rate)
        self.fused = bool(fused)
        self.padding = check_choice("padding", padding, ("same", "symmetric"))
        self._set_common(
            activation,
            kernel_initializer,
            kernel_regularizer,
            norm_momentum,
            norm_epsilon,
            data_format,
            folded,
        )
        # Only the strided convolution pads differently ("same" is symmetric
        # at stride 1 for odd kernels).
        self.pad = None
        if self.padding == "symmetric" and strides > 1 and kernel_size > 1:
            self.pad = keras.layers.ZeroPadding2D(
                kernel_size // 2,
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="pad",
            )

        # The fused block has no depthwise convolution; without expansion its
        # one full convolution is the projection, with an activation after.
        self.depthwise = self.depthwise_norm = self.depthwise_act = None
        self.project_act = None
        if not self.fused:
            self.depthwise = keras.layers.DepthwiseConv2D(
                kernel_size,
                strides=strides,
                padding="same" if self.pad is None else "valid",
                use_bias=False,
                data_format=self.data_format,
                depthwise_initializer=keras.initializers.get(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                depthwise_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name="depthwise",
            )
            self.depthwise_norm = self._norm(name="depthwise_bn")
            self.depthwise_act = self._act(name="depthwise_act")
            self.project = self._conv(filters, 1, name="project_conv")
        elif expand_ratio == 1:
            self.project = self._padded(
                self._conv(filters, kernel_size, strides, name="project_conv")
            )
            self.project_act = self._act(name="project_act")
        else:
            self.project = self._conv(filters, 1, name="project_conv")
        self.project_norm = self._norm(name="project_bn")
        # Sized by the input channels, or only present for some inputs: made in
        # build().
        self.expand = None
        self.expand_norm = None
        self.expand_act = None
        self.se = None
        self.drop = None

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        shape = tuple(input_shape)
        expanded = self._expanded_channels(channels)
        if self.expand_ratio != 1:
            # The fused block's expansion is its full, strided convolution.
            kernel, strides = (self.kernel_size, self.strides) if self.fused else (1, 1)
            self.expand = self._conv(expanded, kernel, strides, name="expand_conv")
            if self.fused:
                self.expand = self._padded(self.expand)
                shape = self._pad_shape(shape)
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
            self.expand_norm = self._norm(name="expand_bn")
            self.expand_norm.build(shape)
            self.expand_act = self._act(name="expand_act")
        if self.depthwise is not None:
            shape = self._pad_shape(shape)
            self.depthwise.build(shape)
            shape = self.depthwise.compute_output_shape(shape)
            self.depthwise_norm.build(shape)
        if self.se_ratio:
            base = channels if self.se_from == "input" else expanded
            se_activation = self.se_activation or self.activation
            self.se = SqueezeExcite(
                squeeze_filters=self._round(base * self.se_ratio, truncate=True),
                activation=keras.activations.serialize(se_activation),
                gate_activation=keras.activations.serialize(self.se_gate_activation),
                kernel_initializer=keras.initializers.serialize(
                    self.kernel_initializer
                ),
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="se",
            )
            self.se.build(shape)
        if self.fused and self.expand_ratio == 1:
            shape = self._pad_shape(shape)
        self.project.build(shape)
        self.project_norm.build(self.project.compute_output_shape(shape))
        if self._has_residual(channels) and self.drop_rate:
            self.drop = keras.layers.Dropout(
                self.drop_rate,
                noise_shape=(None, 1, 1, 1),
                dtype=self.dtype_policy,
                name="stochastic_depth",
            )

    def _padded(self, conv):
        """`conv`, `"valid"` when the block pads explicitly."""
        if self.pad is None:
            return conv
        return keras.layers.Conv2D.from_config(
            {**conv.get_config(), "padding": "valid"}
        )

    def _pad_shape(self, shape):
        return shape if self.pad is None else self.pad.compute_output_shape(shape)

    def _padding(self, x):
        return x if self.pad is None else self.pad(x)

    def _round(self, width, truncate=False):
        if self.divisor:
            return make_divisible(width, self.divisor)
        # The squeeze width has always been truncated, the expanded one exact
        # for integer ratios.
        return max(1, int(width) if truncate else round(width))

    def _expanded_channels(self, channels):
        if self.expand_ratio == 1:
            return channels
        return self._round(channels * self.expand_ratio)

    def folding_pairs(self):
        pairs = [(self.expand, self.expand_norm)] if self.expand is not None else []
        if self.depthwise is not None:
            pairs.append((self.depthwise, self.depthwise_norm))
        return [*pairs, (self.project, self.project_norm)]

    def _has_residual(self, channels):
        return self.strides == 1 and channels == self.filters

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            if self.fused:
                x = self._padding(x)
            x = self.expand_act(self.expand_norm(self.expand(x), training=training))
        if self.depthwise is not None:
            x = self._padding(x)
            x = self.depthwise_act(
                self.depthwise_norm(self.depthwise(x), training=training)
            )
        if self.se is not None:
            x = self.se(x)
        if self.fused and self.expand_ratio == 1:
            x = self._padding(x)
        x = self.project_norm(self.project(x), training=training)
        if self.project_act is not None:
            x = self.project_act(x)
        if self._has_residual(inputs.shape[self._channel_axis]):
            if self.drop is not None:
                x = self.drop(x, training=training)
            x = x + inputs
        return x

    def compute_output_shape(self, input_shape):
        check_image_input(self, input_shape, self.data_format)
        return spatial_output_shape(
            input_shape, self.filters, self.strides, self.data_format
        )

    def get_config(self):
        config = {
            "filters": self.filters,
            "expand_ratio": self.expand_ratio,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "se_ratio": self.se_ratio,
            "se_from": self.se_from,
            "se_activation": (
                None
                if self.se_activation is None
                else keras.activations.serialize(self.se_activation)
            ),
            "se_gate_activation": keras.activations.serialize(self.se_gate_activation),
            "divisor": self.divisor,
            "drop_rate": self.drop_rate,
            **self._common_config(),
        }
        # Only when set: the configs of unfused blocks stay as they were.
        if self.fused:
            config["fused"] = True
        if self.padding != "same":
            config["padding"] = self.padding
        return {**super().get_config(), **config}
