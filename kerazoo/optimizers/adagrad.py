import keras
from keras import ops

from kerazoo._checks import check_non_negative
from kerazoo._checks import check_positive
from kerazoo.api import register
from kerazoo.optimizers.base import Optimizer


@register
class AdaGrad(Optimizer):
    """AdaGrad: each weight's step divided by the root of its summed squared
    gradients.

        G = G + g ** 2
        theta = theta - eta * g / sqrt(G + epsilon)

    Weights with large past gradients take small steps and rarely-updated ones
    large steps; as G only grows, the steps shrink over training. This is the
    form of Ruder's overview (which the lecture cites) and of Keras's built-in
    `Adagrad`.

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        initial_accumulator_value: Starting value of G (non-negative).
        epsilon: Small positive float that keeps the division finite.
        **kwargs: `lr_multipliers` and `skip_nonfinite` (see
            `kerazoo.optimizers.Optimizer`) and the base optimizer arguments
            (`weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `gradient_accumulation_steps`,
            `loss_scale_factor`, `name`).

    Example:

    >>> optimizer = AdaGrad(learning_rate=0.01)

    Reference:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning
        and Stochastic Optimization", JMLR 2011.
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        name="AdaGrad",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list,
            "accumulator",
            initializer=keras.initializers.Constant(self.initial_accumulator_value),
        )

    def update_step(self, gradient, variable, learning_rate):
        gradient, lr, finite = self._prepare(gradient, variable, learning_rate)
        accumulator = self._accumulators[self._get_variable_index(variable)]
        fused = self._fused_kernels(gradient, variable, finite)
        if fused:
            # No fused AdaGrad kernel has epsilon inside the root; the
            # in-place `var -= alpha * delta` kernel saves the temporaries of
            # the sum and of `lr * g`.
            self.assign_add(accumulator, ops.square(gradient))
            fused.ResourceApplyGradientDescent(
                var=variable.handle,
                alpha=lr,
                delta=gradient / ops.sqrt(accumulator + self.epsilon),
            )
            return
        new_accumulator = accumulator + ops.square(gradient)
        self._update(accumulator, new_accumulator, finite)
        step = lr * gradient / ops.sqrt(new_accumulator + self.epsilon)
        self._update_sub(variable, step, finite)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
