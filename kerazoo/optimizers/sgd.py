from keras import ops

from kerazoo._checks import check_fraction
from kerazoo.api import register
from kerazoo.optimizers.base import Optimizer
from kerazoo.optimizers.base import serialize_hyperparameter


@register
class SGD(Optimizer):
    """Gradient descent, with optional momentum and Nesterov momentum.

    With learning rate eta, momentum gamma and gradient g = dJ/dtheta:

    - plain (`momentum=0`): `theta = theta - eta * g`;
    - momentum: `v = gamma * v + eta * g; theta = theta - v`;
    - Nesterov: the gradient is taken at the look-ahead point
      `theta - gamma * v`: `v_t = gamma * v_{t-1} + eta * g(theta - gamma * v_{t-1});
      theta = theta - v_t`.

    For Nesterov the model variables hold the look-ahead point
    `phi = theta - gamma * v`, so the gradient Keras computes at the variables is
    exactly the lecture's look-ahead gradient. Substituting
    `theta_t = phi_t + gamma * v_t` into `theta_t = theta_{t-1} - v_t` gives the
    update applied here: `v_t = gamma * v_{t-1} + eta * g(phi_{t-1})`,
    `phi_t = phi_{t-1} - gamma * v_t - eta * g(phi_{t-1})`. At the end of
    training `phi` and `theta` differ by `gamma * v`, which is small once the
    steps are.

    Whether the update runs per example, per mini-batch or once per pass over the
    data (stochastic, mini-batch or full-batch gradient descent) is a question of
    batch size, not of the optimizer.

    The velocity `v` follows the lecture's sign convention (it is subtracted);
    Keras's built-in stores `-v`. The two compute the same trajectory.

    A scheduled momentum (for example
    `kerazoo.optimizers.schedules.OneCycle(...).momentum_schedule()`) uses
    `gamma_t` in step t; with Nesterov the variables then hold
    `theta_t - gamma_{t+1} * v_t`, the point where step t + 1 takes its
    gradient, so the update becomes `phi_t = phi_{t-1} - eta * g - gamma_{t+1} * v_t`.

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        momentum: gamma, in [0, 1), or a schedule (a callable taking the step,
            such as a `LearningRateSchedule`) giving it per step.
        nesterov: Whether to use Nesterov momentum (needs `momentum > 0` to make
            a difference).
        **kwargs: `lr_multipliers` and `skip_nonfinite` (see
            `kerazoo.optimizers.Optimizer`) and the base optimizer arguments
            (`weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `gradient_accumulation_steps`,
            `loss_scale_factor`, `name`).

    Example:

    >>> optimizer = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)

    Reference:
        Sutskever et al., "On the importance of initialization and momentum in
        deep learning", ICML 2013.
    """

    _schedulable = ("momentum",)

    def __init__(
        self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not callable(momentum):
            momentum = check_fraction("momentum", momentum)
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = []
        if self.momentum:
            self._velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        gradient, lr, finite = self._prepare(gradient, variable, learning_rate)
        fused = self._fused_kernels(gradient, variable, finite)
        if not self.momentum:
            if fused:
                fused.ResourceApplyGradientDescent(
                    var=variable.handle, alpha=lr, delta=gradient
                )
            else:
                self._update_sub(variable, lr * gradient, finite)
            return
        v = self._velocities[self._get_variable_index(variable)]
        gamma = self._hyperparameter(self.momentum, variable.dtype)
        step = lr * gradient
        if fused and not (self.nesterov and callable(self.momentum)):
            # The kernel's `accum = momentum * accum + grad; var -= lr * accum`
            # (Nesterov: `var -= lr * grad + lr * momentum * accum`) with
            # grad = eta * g and lr = 1 is this rule, v held in `accum`.
            fused.ResourceApplyMomentum(
                var=variable.handle,
                accum=v.handle,
                lr=ops.ones((), variable.dtype),
                grad=step,
                momentum=gamma,
                use_nesterov=self.nesterov,
            )
            return
        # A skipped update keeps v: 1 * v + eta * 0.
        new_v = self._unless_skipped(gamma, finite, 1) * v + step
        self._update(v, new_v, finite)
        if self.nesterov:
            # The variables hold the look-ahead point for the next step, which
            # uses next step's momentum when momentum is scheduled.
            gamma_next = self._hyperparameter(self.momentum, variable.dtype, 1)
            self._update_sub(variable, gamma_next * new_v + step, finite)
        else:
            self._update_sub(variable, new_v, finite)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": serialize_hyperparameter(self.momentum),
                "nesterov": self.nesterov,
            }
        )
        return config
