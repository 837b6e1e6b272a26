from keras import ops

from kerazoo.api import register
from kerazoo.layers._normalization_base import AffineNormalization
from kerazoo.layers._normalization_base import check_axis
from kerazoo.layers._normalization_base import normalize


@register
class GroupNormalization(AffineNormalization):
    """Group normalization: channels split into groups, each normalised per example.

    Mean and variance are taken per example over the spatial axes and the channels
    of one group; gamma and beta are per channel. No batch statistics, so it works
    at batch size 1, where batch normalization cannot. `groups=1` normalises each
    example over all its channels (layer normalization of images) and `groups=-1`
    (one channel a group) is instance normalization. Takes the same arguments as
    `keras.layers.GroupNormalization`.

    Args:
        groups: Number of groups; must divide the number of channels. -1 means
            one group per channel.
        axis: The channel axis.
        epsilon: Small positive float added to the variance.
        center: Whether to add the learnable offset `beta`.
        scale: Whether to multiply by the learnable scale `gamma`.
        beta_initializer, gamma_initializer: Initializers of `beta`, `gamma`.
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer arguments.

    Example:

    >>> y = GroupNormalization(groups=4)(np.random.normal(size=(1, 6, 6, 16)))
    >>> y.shape
    (1, 6, 6, 16)

    Reference:
        Wu & He, "Group Normalization", ECCV 2018.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)
        if (
            isinstance(groups, bool)
            or not isinstance(groups, int)
            or (groups <= 0 and groups != -1)
        ):
            raise ValueError(
                "`groups` must be a positive integer, or -1 for one group per "
                f"channel. Received: groups={groups!r}"
            )
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.groups = groups
        self.axis = axis

    def build(self, input_shape):
        ndim = len(input_shape)
        axis = check_axis(type(self).__name__, self.axis, ndim, input_shape)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of channels. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        groups = channels if self.groups == -1 else self.groups
        if channels % groups:
            raise ValueError(
                f"`groups` must divide the number of channels ({channels}). "
                f"Received: groups={self.groups}"
            )
        self._group_axis = axis
        self._num_groups = groups
        self._add_affine_weights((channels,))
        # Normalisation runs on the tensor reshaped to [..., groups, channels/groups,
        # ...]; statistics reduce every axis but the batch and the group axis.
        grouped_ndim = ndim + 1
        self._reduction_axes = [i for i in range(1, grouped_ndim) if i != axis]
        self._param_shape = [1] * grouped_ndim
        self._param_shape[axis] = groups
        self._param_shape[axis + 1] = channels // groups

    def call(self, inputs):
        x = ops.cast(
            inputs,
            "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype,
        )
        shape = ops.shape(x)
        axis = self._group_axis
        grouped_shape = [
            -1,
            *shape[1:axis],
            self._num_groups,
            x.shape[axis] // self._num_groups,
            *shape[axis + 1 :],
        ]
        grouped = ops.reshape(x, grouped_shape)
        mean, variance = ops.moments(grouped, axes=self._reduction_axes, keepdims=True)
        gamma, beta = self._affine(self._param_shape, x.dtype)
        y = normalize(grouped, mean, variance, self.epsilon, gamma, beta)
        return ops.cast(ops.reshape(y, shape), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis}
