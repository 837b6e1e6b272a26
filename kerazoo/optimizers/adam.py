import keras
from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_learning_rate
from kerazoo._checks import check_positive
from kerazoo.api import register


@register
class Adam(keras.optimizers.Optimizer):
    """Adam: momentum on the gradient, RMSProp on its square, both bias-corrected.

    With learning rate eta, step t = 1, 2, ... and gradient g (Kingma & Ba,
    Algorithm 1):

        m = beta_1 * m + (1 - beta_1) * g
        s = beta_2 * s + (1 - beta_2) * g ** 2
        m_hat = m / (1 - beta_1 ** t)
        s_hat = s / (1 - beta_2 ** t)
        theta = theta - eta * m_hat / (sqrt(s_hat) + epsilon)

    The lecture's slide writes `nu_t = beta_1 * nu_{t-1} - (1 - beta_1) * g_t` and
    `s_t = beta_2 * s_{t-1} - (1 - beta_2) * g_t ** 2` (minus signs where the paper
    has plus), multiplies the step by `g_t` once more, puts epsilon inside the
    square root and leaves out the bias correction: typos, not a different
    algorithm. This class follows the paper.

    Keras's built-in `Adam` uses the paper's "efficient" form, in which epsilon is
    scaled by `sqrt(1 - beta_2 ** t)`; the two agree closely unless `s_hat` is
    comparable to epsilon.

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        beta_1: Decay of the first-moment (momentum) average, in [0, 1).
        beta_2: Decay of the second-moment average, in [0, 1).
        epsilon: Small positive float that keeps the division finite.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `gradient_accumulation_steps`, `loss_scale_factor`, `name`).

    Example:

    >>> optimizer = Adam(learning_rate=1e-3)

    Reference:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        name="Adam",
        **kwargs,
    ):
        check_learning_rate(learning_rate)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = check_fraction("beta_1", beta_1)
        self.beta_2 = check_fraction("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, s = self._momentums[index], self._velocities[index]
        self.assign(m, beta_1 * m + (1 - beta_1) * gradient)
        self.assign(s, beta_2 * s + (1 - beta_2) * ops.square(gradient))
        m_hat = m / (1 - ops.power(beta_1, t))
        s_hat = s / (1 - ops.power(beta_2, t))
        self.assign_sub(variable, lr * m_hat / (ops.sqrt(s_hat) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
        )
        return config
