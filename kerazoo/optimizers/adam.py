from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive
from kerazoo.api import register
from kerazoo.optimizers.base import Optimizer
from kerazoo.optimizers.base import serialize_hyperparameter


@register
class Adam(Optimizer):
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
        beta_1: Decay of the first-moment (momentum) average, in [0, 1), or a
            schedule giving it per step (one-cycle varies it like momentum);
            the bias correction then divides by `1 - prod(beta_1 per step)`.
        beta_2: Decay of the second-moment average, in [0, 1).
        epsilon: Small positive float that keeps the division finite.
        **kwargs: `lr_multipliers` and `skip_nonfinite` (see
            `kerazoo.optimizers.Optimizer`) and the base optimizer arguments
            (`weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `gradient_accumulation_steps`,
            `loss_scale_factor`, `name`).

    Example:

    >>> optimizer = Adam(learning_rate=1e-3)

    Reference:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    _schedulable = ("beta_1",)

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        name="Adam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not callable(beta_1):
            beta_1 = check_fraction("beta_1", beta_1)
        self.beta_1 = beta_1
        self.beta_2 = check_fraction("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        self._beta_1_products = []
        if callable(self.beta_1):
            self._beta_1_products = [
                self.add_variable((), initializer="ones", name=f"beta_1_product_{i}")
                for i in range(len(var_list))
            ]

    def update_step(self, gradient, variable, learning_rate):
        gradient, lr, finite = self._prepare(gradient, variable, learning_rate)
        dtype = variable.dtype
        t = ops.cast(self.iterations + 1, dtype)
        beta_1 = self._hyperparameter(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, s = self._momentums[index], self._velocities[index]
        if callable(self.beta_1):
            # With a scheduled beta_1 the bias correction is the product of
            # the betas seen so far, kept per variable.
            product = self._beta_1_products[index]
            beta_1_power = product * beta_1
            kept = self._unless_skipped(beta_1, finite, 1)
            self._update(product, product * kept, finite)
        else:
            beta_1_power = ops.power(beta_1, t)
        beta_2_power = ops.power(beta_2, t)
        # The paper's m_hat / (sqrt(s_hat) + eps), rearranged so that the bias
        # corrections are scalars: lr * sqrt(c_2) / c_1 * m / (sqrt(s) + eps
        # * sqrt(c_2)) with c = 1 - beta ** t. (Keras's built-in drops the
        # sqrt(c_2) on epsilon.)
        sqrt_c2 = ops.sqrt(1 - beta_2_power)
        fused = self._fused_kernels(gradient, variable, finite)
        if fused:
            # One kernel: `alpha = lr * sqrt(1 - beta2_power) / (1 -
            # beta1_power)`, the moments as below, and `var -= alpha * m /
            # (sqrt(s) + epsilon)`; given epsilon * sqrt(c_2), the paper's.
            fused.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=s.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=self.epsilon * sqrt_c2,
                grad=gradient,
            )
            return
        # A skipped update keeps both moments: decays of 1, a zero gradient.
        beta_1 = self._unless_skipped(beta_1, finite, 1)
        beta_2 = self._unless_skipped(beta_2, finite, 1)
        new_m = beta_1 * m + (1 - beta_1) * gradient
        new_s = beta_2 * s + (1 - beta_2) * ops.square(gradient)
        self._update(m, new_m, finite)
        self._update(s, new_s, finite)
        alpha = lr * sqrt_c2 / (1 - beta_1_power)
        step = alpha * new_m / (ops.sqrt(new_s) + self.epsilon * sqrt_c2)
        self._update_sub(variable, step, finite)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": serialize_hyperparameter(self.beta_1),
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
            }
        )
        return config
