import keras

from kerazoo._checks import check_positive_int
from kerazoo.api import register
from kerazoo.layers._utils import BlockMixin
from kerazoo.layers._utils import check_image_input
from kerazoo.layers._utils import spatial_output_shape


@register
class InceptionBlock(BlockMixin, keras.layers.Layer):
    """The Inception module of GoogLeNet, naive or with dimension reductions.

    Four parallel branches see the same input and their outputs are concatenated
    along the channels: a 1x1 convolution, a 3x3 convolution, a 5x5 convolution
    and a 3x3 max-pool (stride 1). Every convolution uses "same" padding and is
    followed by the activation, so the spatial size is kept.

    - Naive module (Szegedy et al. 2014, Figure 2a): the three optional arguments
      are None. The pool branch passes all input channels through, so the output
      has `filters_1x1 + filters_3x3 + filters_5x5 + input_channels` channels and
      grows with every module.
    - Module with dimension reductions (Figure 2b): `filters_3x3_reduce` and
      `filters_5x5_reduce` put a 1x1 convolution before the 3x3 and 5x5 ones, and
      `filters_pool_proj` a 1x1 projection after the pool. Each may be given on
      its own.

    For GoogLeNet's inception (3a) on a 28x28x192 input, (64, 128, 32) gives 416
    channels and 387,296 parameters naive; with reductions (96, 16, 32) it gives
    256 channels and 163,696 parameters.

    Args:
        filters_1x1: Filters of the 1x1 branch.
        filters_3x3: Filters of the 3x3 convolution.
        filters_5x5: Filters of the 5x5 convolution.
        filters_3x3_reduce: Filters of the 1x1 reduction before the 3x3
            convolution, or None for none.
        filters_5x5_reduce: Filters of the 1x1 reduction before the 5x5
            convolution, or None for none.
        filters_pool_proj: Filters of the 1x1 projection after the max-pool, or
            None to pass the pooled input through.
        batch_norm: Whether each convolution is followed by batch normalization
            (as in Inception v2 and later) instead of having a bias (GoogLeNet).
        activation: Activation after each convolution.
        kernel_initializer: Initializer of the convolution kernels.
        kernel_regularizer: Optional regularizer of the convolution kernels.
        norm_momentum: Momentum of the batch norms (when `batch_norm=True`).
        norm_epsilon: Epsilon of the batch norms (when `batch_norm=True`).
        data_format: `"channels_last"` or `"channels_first"`; default from
            `keras.config.image_data_format()`.
        folded: Whether the block's batch norms have been folded into the
            convolutions before them (`kerazoo.export.fold_batch_norms` sets
            it): each then only adds its offset. For exported inference graphs,
            not for training.
        **kwargs: Base layer arguments.

    Example:

    >>> block = InceptionBlock(64, 128, 32, 96, 16, 32)
    >>> block(keras.Input((28, 28, 192))).shape
    (None, 28, 28, 256)

    Reference:
        Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
    """

    def __init__(
        self,
        filters_1x1,
        filters_3x3,
        filters_5x5,
        filters_3x3_reduce=None,
        filters_5x5_reduce=None,
        filters_pool_proj=None,
        batch_norm=False,
        activation="relu",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        data_format=None,
        folded=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters_1x1 = check_positive_int("filters_1x1", filters_1x1)
        self.filters_3x3 = check_positive_int("filters_3x3", filters_3x3)
        self.filters_5x5 = check_positive_int("filters_5x5", filters_5x5)
        self.filters_3x3_reduce = check_positive_int(
            "filters_3x3_reduce", filters_3x3_reduce, allow_none=True
        )
        self.filters_5x5_reduce = check_positive_int(
            "filters_5x5_reduce", filters_5x5_reduce, allow_none=True
        )
        self.filters_pool_proj = check_positive_int(
            "filters_pool_proj", filters_pool_proj, allow_none=True
        )
        self.batch_norm = batch_norm
        self._set_common(
            activation,
            kernel_initializer,
            kernel_regularizer,
            norm_momentum,
            norm_epsilon,
            data_format,
            folded,
        )
        if self.folded and not self.batch_norm:
            raise ValueError(
                "An Inception block without batch norms has nothing folded. "
                "Received: batch_norm=False, folded=True"
            )

        self.branch_1x1 = self._unit(filters_1x1, 1, "1x1")
        self.branch_3x3 = (
            self._unit(filters_3x3_reduce, 1, "3x3_reduce")
            if filters_3x3_reduce
            else []
        ) + self._unit(filters_3x3, 3, "3x3")
        self.branch_5x5 = (
            self._unit(filters_5x5_reduce, 1, "5x5_reduce")
            if filters_5x5_reduce
            else []
        ) + self._unit(filters_5x5, 5, "5x5")
        self.branch_pool = [
            keras.layers.MaxPooling2D(
                3,
                strides=1,
                padding="same",
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="pool",
            )
        ] + (self._unit(filters_pool_proj, 1, "pool_proj") if filters_pool_proj else [])
        self.concat = keras.layers.Concatenate(
            axis=self._channel_axis, dtype=self.dtype_policy
        )

    @property
    def reduced(self):
        """Whether any 1x1 reduction or projection is used."""
        return any(
            f is not None
            for f in (
                self.filters_3x3_reduce,
                self.filters_5x5_reduce,
                self.filters_pool_proj,
            )
        )

    def _unit(self, filters, kernel_size, name):
        """Conv (with bias, or followed by BN) and the activation."""
        layers = [
            self._conv(
                filters, kernel_size, use_bias=not self.batch_norm, name=f"conv_{name}"
            )
        ]
        if self.batch_norm:
            layers.append(self._norm(name=f"bn_{name}"))
        layers.append(self._act(name=f"act_{name}"))
        return layers

    def _branches(self):
        return (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)

    def folding_pairs(self):
        if not self.batch_norm:
            return []
        return [
            (layer, branch[i + 1])
            for branch in self._branches()
            for i, layer in enumerate(branch)
            if isinstance(layer, keras.layers.Conv2D)
        ]

    def build(self, input_shape):
        check_image_input(self, input_shape, self.data_format)
        shapes = []
        for branch in self._branches():
            shape = tuple(input_shape)
            for layer in branch:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        self.concat.build(shapes)

    def call(self, inputs, training=None):
        outputs = []
        for branch in self._branches():
            x = inputs
            for layer in branch:
                x = layer(x, training=training)
            outputs.append(x)
        return self.concat(outputs)

    def compute_output_shape(self, input_shape):
        channels = check_image_input(self, input_shape, self.data_format)
        out = (
            self.filters_1x1
            + self.filters_3x3
            + self.filters_5x5
            + (self.filters_pool_proj or channels)
        )
        return spatial_output_shape(input_shape, out, 1, self.data_format)

    def get_config(self):
        config = {
            "filters_1x1": self.filters_1x1,
            "filters_3x3": self.filters_3x3,
            "filters_5x5": self.filters_5x5,
            "filters_3x3_reduce": self.filters_3x3_reduce,
            "filters_5x5_reduce": self.filters_5x5_reduce,
            "filters_pool_proj": self.filters_pool_proj,
            "batch_norm": self.batch_norm,
            **self._common_config(),
        }
        return {**super().get_config(), **config}
