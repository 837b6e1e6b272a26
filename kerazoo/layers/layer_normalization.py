from keras import ops

from kerazoo.api import register
from kerazoo.layers._normalization_base import AffineNormalization
from kerazoo.layers._normalization_base import check_axis
from kerazoo.layers._normalization_base import normalize


@register
class LayerNormalization(AffineNormalization):
    """Layer normalization: each example normalised over its feature axes.

    `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, with mean and variance
    taken per example over `axis`; gamma and beta have the shape of those axes.
    No batch statistics, so training and inference agree at any batch size.
    Takes the same arguments as `keras.layers.LayerNormalization`.

    Args:
        axis: Integer or list of integers: the axes to normalise over.
        epsilon: Small positive float added to the variance.
        center: Whether to add the learnable offset `beta`.
        scale: Whether to multiply by the learnable scale `gamma`.
        beta_initializer, gamma_initializer: Initializers of `beta`, `gamma`.
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer arguments.

    Example:

    >>> y = LayerNormalization()(np.random.normal(size=(2, 5, 8)))
    >>> y.shape
    (2, 5, 8)

    Reference:
        Ba, Kiros & Hinton, "Layer Normalization", 2016.
    """

    def __init__(self, axis=-1, epsilon=1e-3, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise ValueError(
                "`axis` must be an integer or a non-empty list of integers. "
                f"Received: axis={axis!r}"
            )
        self.axis = axis

    def build(self, input_shape):
        ndim = len(input_shape)
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        self._axes = sorted(
            check_axis("LayerNormalization", a, ndim, input_shape) for a in axes
        )
        if any(input_shape[a] is None for a in self._axes):
            raise ValueError(
                "LayerNormalization needs known sizes along `axis`. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        self._add_affine_weights(tuple(input_shape[a] for a in self._axes))
        self._param_shape = [
            input_shape[i] if i in self._axes else 1 for i in range(ndim)
        ]

    def call(self, inputs):
        x = ops.cast(
            inputs,
            "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype,
        )
        mean, variance = ops.moments(x, axes=self._axes, keepdims=True)
        gamma, beta = self._affine(self._param_shape, x.dtype)
        return ops.cast(
            normalize(x, mean, variance, self.epsilon, gamma, beta), self.compute_dtype
        )

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
