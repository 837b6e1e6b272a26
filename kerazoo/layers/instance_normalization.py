from kerazoo.api import register
from kerazoo.layers.group_normalization import GroupNormalization


@register
class InstanceNormalization(GroupNormalization):
    """Instance normalization: each channel of each example normalised on its own.

    Mean and variance are taken over the spatial axes only, per example and per
    channel; gamma and beta are per channel. It is `GroupNormalization` with one
    group per channel, so it needs no batch statistics and works at batch size 1.

    Args:
        axis: The channel axis.
        epsilon: Small positive float added to the variance.
        center: Whether to add the learnable offset `beta`.
        scale: Whether to multiply by the learnable scale `gamma`.
        beta_initializer, gamma_initializer: Initializers of `beta`, `gamma`.
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer arguments.

    Example:

    >>> y = InstanceNormalization()(np.random.normal(size=(1, 6, 6, 3)))
    >>> y.shape
    (1, 6, 6, 3)

    Reference:
        Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
        Ingredient for Fast Stylization", 2016.
    """

    def __init__(self, axis=-1, epsilon=1e-3, **kwargs):
        if "groups" in kwargs:
            raise ValueError(
                "InstanceNormalization always uses one group per channel; use "
                "GroupNormalization to choose groups. "
                f"Received: groups={kwargs['groups']}"
            )
        super().__init__(groups=-1, axis=axis, epsilon=epsilon, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        return config
