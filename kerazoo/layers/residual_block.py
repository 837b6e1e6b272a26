import keras

from kerazoo._checks import check_choice
from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import BlockMixin
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import spatial_output_shape


@register
class ResidualBlock(BlockMixin, keras.layers.Layer):
    """A ResNet block: a few convolutions plus an identity (or projected) shortcut.

    - `kind="basic"`: 3x3 conv (`filters`) - BN - act - 3x3 conv (`filters`) - BN;
      output has `filters` channels.
    - `kind="bottleneck"`: 1x1 conv (`filters`) - BN - act - 3x3 conv (`filters`) -
      BN - act - 1x1 conv (`4 * filters`) - BN; output has `4 * filters` channels.

    The shortcut adds the input to the block's output and the activation follows
    the sum. When the shape changes (stride or channels), the shortcut is a 1x1
    projection with batch norm (He et al.'s option B). With `shortcut=False` the
    same layers run without the addition: the "plain" network of He et al.'s
    Figure 1, whose deeper versions train worse.

    With `preactivation=True` the block is the one of "Identity Mappings in Deep
    Residual Networks": BN - act - conv for each convolution, nothing after the
    addition, and a projection shortcut taken from the pre-activated input.

    Args:
        filters: Filters of the block's convolutions (the bottleneck width for
            `kind="bottleneck"`).
        kind: `"basic"` or `"bottleneck"`.
        strides: Stride of the block (1 or 2 in ResNets).
        shortcut: Whether to add the shortcut; False makes a plain block.
        preactivation: Whether to use the pre-activation (ResNet v2) ordering.
        stride_on: Where a bottleneck block strides: `"3x3"` (ResNet v1.5, as in
            torchvision and timm) or `"1x1"` (the original paper and
            `keras.applications.ResNet50`).
        shortcut_type: How a shortcut changes shape: `"projection"` (a 1x1
            convolution with batch norm, option B) or `"zero_pad"` (option A of
            the CIFAR-10 networks: subsample by the stride and pad the new
            channels with zeros, no parameters).
        activation: The activation.
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
        **kwargs: Base layer arguments.

    Example:

    >>> block = ResidualBlock(64, kind="bottleneck", strides=2)
    >>> block(keras.Input((56, 56, 256))).shape
    (None, 28, 28, 256)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
        He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.
    """

    expansion = {"basic": 1, "bottleneck": 4}

    def __init__(
        self,
        filters,
        kind="basic",
        strides=1,
        shortcut=True,
        preactivation=False,
        stride_on="3x3",
        shortcut_type="projection",
        padding="same",
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        data_format=None,
        folded=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kind = check_choice("kind", kind, tuple(self.expansion))
        self.strides = check_positive_int("strides", strides)
        self.shortcut = bool(shortcut)
        self.preactivation = bool(preactivation)
        self.stride_on = check_choice("stride_on", stride_on, ("3x3", "1x1"))
        self.shortcut_type = check_choice(
            "shortcut_type", shortcut_type, ("projection", "zero_pad")
        )
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
        if self.folded and self.preactivation:
            raise ValueError(
                "A pre-activation block has no batch norm after a convolution to "
                "fold. Received: preactivation=True, folded=True"
            )

        if kind == "basic":
            specs = [(filters, 3, strides), (filters, 3, 1)]
        else:
            first_stride = strides if stride_on == "1x1" else 1
            middle_stride = 1 if stride_on == "1x1" else strides
            specs = [
                (filters, 1, first_stride),
                (filters, 3, middle_stride),
                (filters * 4, 1, 1),
            ]
        self.convs = [
            self._block_conv(f, k, s, name=f"conv{i + 1}")
            for i, (f, k, s) in enumerate(specs)
        ]
        self.pads = [
            self._pad(k, name=f"conv{i + 1}_pad") if self._pads(k, s) else None
            for i, (_, k, s) in enumerate(specs)
        ]
        self.norms = [self._norm(name=f"bn{i + 1}") for i in range(len(specs))]
        self.acts = [self._act(name=f"act{i + 1}") for i in range(len(specs))]
        # Created in build(), once the input channels say whether it is needed.
        self.projection = None
        self.projection_norm = None

    def _pads(self, kernel_size, strides):
        """Whether a convolution pads explicitly: with `padding="symmetric"`,
        a strided one larger than 1x1 (a strided 1x1 convolution samples
        pixels 0, s, 2s, ... with either padding, as PyTorch's)."""
        return self.padding == "symmetric" and strides > 1 and kernel_size > 1

    def _block_conv(self, filters, kernel_size, strides, name):
        conv = self._conv(filters, kernel_size, strides, name=name)
        if self._pads(kernel_size, strides):
            # The same convolution, "valid" after its explicit padding.
            conv = keras.layers.Conv2D.from_config(
                {**conv.get_config(), "padding": "valid"}
            )
        return conv

    def _pad(self, kernel_size, name):
        return keras.layers.ZeroPadding2D(
            kernel_size // 2,
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name=name,
        )

    @property
    def output_filters(self):
        return self.filters * self.expansion[self.kind]

    def build(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        input_shape = tuple(input_shape)
        needs_projection = (
            self.shortcut
            and self.shortcut_type == "projection"
            and (self.strides != 1 or channels != self.output_filters)
        )
        if needs_projection:
            self.projection = self._conv(
                self.output_filters, 1, self.strides, name="shortcut_conv"
            )
            self.projection.build(input_shape)
            if not self.preactivation:
                self.projection_norm = self._norm(name="shortcut_bn")
                self.projection_norm.build(
                    self.projection.compute_output_shape(input_shape)
                )
        shape = input_shape
        for conv, norm, pad in zip(self.convs, self.norms, self.pads, strict=True):
            if self.preactivation:
                norm.build(shape)
            if pad is not None:
                shape = pad.compute_output_shape(shape)
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if not self.preactivation:
                norm.build(shape)

    def call(self, inputs, training=None):
        n = len(self.convs)
        if self.preactivation:
            x = self.acts[0](self.norms[0](inputs, training=training))
            if self.projection is not None:
                residual = self.projection(x)
            elif self.shortcut_type == "zero_pad":
                residual = self._zero_pad_shortcut(inputs)
            else:
                residual = inputs
            for i in range(n):
                if i:
                    x = self.acts[i](self.norms[i](x, training=training))
                x = self._apply_conv(i, x)
            return x + residual if self.shortcut else x

        x = inputs
        for i in range(n):
            x = self.norms[i](self._apply_conv(i, x), training=training)
            if i < n - 1:
                x = self.acts[i](x)
        if self.shortcut:
            residual = inputs
            if self.projection is not None:
                residual = self.projection_norm(
                    self.projection(inputs), training=training
                )
            elif self.shortcut_type == "zero_pad":
                residual = self._zero_pad_shortcut(inputs)
            x = x + residual
        return self.acts[-1](x)

    def _apply_conv(self, i, x):
        if self.pads[i] is not None:
            x = self.pads[i](x)
        return self.convs[i](x)

    def folding_pairs(self):
        if self.preactivation:
            return []
        pairs = list(zip(self.convs, self.norms, strict=True))
        if self.projection_norm is not None:
            pairs.append((self.projection, self.projection_norm))
        return pairs

    def _zero_pad_shortcut(self, inputs):
        """He et al.'s option A: subsample by the stride, pad new channels with
        zeros; no parameters."""
        x = inputs
        s = self.strides
        if s != 1:
            x = x[:, ::s, ::s, :] if self._channel_axis == -1 else x[:, :, ::s, ::s]
        extra = self.output_filters - x.shape[self._channel_axis]
        if extra > 0:
            pad = [[0, 0]] * 4
            pad[self._channel_axis] = [extra // 2, extra - extra // 2]
            x = keras.ops.pad(x, pad)
        return x

    def compute_output_shape(self, input_shape):
        check_image_input(self, input_shape, self.data_format)
        return spatial_output_shape(
            input_shape, self.output_filters, self.strides, self.data_format
        )

    def get_config(self):
        config = {
            "filters": self.filters,
            "kind": self.kind,
            "strides": self.strides,
            "shortcut": self.shortcut,
            "preactivation": self.preactivation,
            "stride_on": self.stride_on,
            "shortcut_type": self.shortcut_type,
            # Only when not the default: a default block's config stays as it was.
            **({"padding": self.padding} if self.padding != "same" else {}),
            **self._common_config(),
        }
        return {**super().get_config(), **config}
