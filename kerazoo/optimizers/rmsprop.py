from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive
from kerazoo.api import register
from kerazoo.optimizers.base import Optimizer


@register
class RMSProp(Optimizer):
    """RMSProp: each weight's step divided by a running root mean square of its
    gradients.

    With learning rate alpha, decay rho and gradient dw:

        v = rho * v + (1 - rho) * dw ** 2
        w = w - alpha * dw / (sqrt(v) + epsilon)

    Epsilon is added outside the square root, as the lecture writes it (and as
    Hinton's lecture 6e and PyTorch do). Keras's built-in `RMSprop` adds it inside
    (`sqrt(v + epsilon)`); the two differ only where `v` is comparable to epsilon.

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        rho: Decay of the running average, in [0, 1).
        epsilon: Small positive float that keeps the division finite.
        **kwargs: `lr_multipliers` and `skip_nonfinite` (see
            `kerazoo.optimizers.Optimizer`) and the base optimizer arguments
            (`weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `gradient_accumulation_steps`,
            `loss_scale_factor`, `name`).

    Example:

    >>> optimizer = RMSProp(learning_rate=1e-3, rho=0.9)

    Reference:
        Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning",
        lecture 6e, 2012.
    """

    def __init__(
        self, learning_rate=0.001, rho=0.9, epsilon=1e-7, name="RMSProp", **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = check_fraction("rho", rho)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        gradient, lr, finite = self._prepare(gradient, variable, learning_rate)
        v = self._velocities[self._get_variable_index(variable)]
        rho = ops.cast(self.rho, variable.dtype)
        fused = self._fused_kernels(gradient, variable, finite)
        if fused:
            # TensorFlow's RMSProp kernel has epsilon inside the root; the
            # in-place `var -= alpha * delta` kernel does both updates here:
            # `v - (1 - rho) * (v - g^2)` is `rho * v + (1 - rho) * g^2`.
            fused.ResourceApplyGradientDescent(
                var=v.handle, alpha=1 - rho, delta=v - ops.square(gradient)
            )
            fused.ResourceApplyGradientDescent(
                var=variable.handle,
                alpha=lr,
                delta=gradient / (ops.sqrt(v) + self.epsilon),
            )
            return
        rho = self._unless_skipped(rho, finite, 1)  # keeps v when skipped
        new_v = rho * v + (1 - rho) * ops.square(gradient)
        self._update(v, new_v, finite)
        step = lr * gradient / (ops.sqrt(new_v) + self.epsilon)
        self._update_sub(variable, step, finite)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
