from kerazoo.api import register
from kerazoo.optimizers.adam import Adam


@register
class AdamW(Adam):
    """Adam with decoupled weight decay.

    Each step first shrinks the weights, `theta = theta - eta * weight_decay *
    theta`, then applies the Adam update, so the decay does not pass through
    Adam's per-weight scaling (which an L2 term in the loss would).

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        weight_decay: The decay coefficient (positive).
        beta_1: Decay of the first-moment average, in [0, 1).
        beta_2: Decay of the second-moment average, in [0, 1).
        epsilon: Small positive float that keeps the division finite.
        **kwargs: Base optimizer arguments.

    Example:

    >>> optimizer = AdamW(learning_rate=1e-3, weight_decay=0.01)

    Reference:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        name="AdamW",
        **kwargs,
    ):
        if weight_decay is None or not weight_decay > 0:
            raise ValueError(
                "`weight_decay` must be positive for AdamW (use Adam for none). "
                f"Received: weight_decay={weight_decay}"
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
