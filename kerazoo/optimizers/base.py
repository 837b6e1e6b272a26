import re
import warnings

import keras
from keras import ops

from kerazoo._checks import check_learning_rate
from kerazoo._checks import check_non_negative
from kerazoo._compat import in_xla_context


def _check_multipliers(lr_multipliers):
    if lr_multipliers is None:
        return None
    if not isinstance(lr_multipliers, dict) or not lr_multipliers:
        raise ValueError(
            "`lr_multipliers` must be a non-empty dict {regex: factor}, e.g. "
            f'{{"body/.*": 0.1}}. Received: lr_multipliers={lr_multipliers!r}'
        )
    checked = {}
    for pattern, factor in lr_multipliers.items():
        try:
            re.compile(pattern)
        except (re.error, TypeError) as error:
            raise ValueError(
                f"`lr_multipliers` key {pattern!r} is not a valid regular "
                f"expression: {error}"
            ) from None
        checked[pattern] = check_non_negative(f"lr_multipliers[{pattern!r}]", factor)
    return checked


# `Optimizer._step_finite` when each variable tests its own gradient.
_PER_VARIABLE = "per variable"


def _finite(gradient):
    """One reduction: the sum is NaN or infinite exactly when an element is,
    or when the finite elements overflow it."""
    return ops.isfinite(ops.sum(gradient))


class Optimizer(keras.optimizers.Optimizer):
    """What every kerazoo optimizer adds to `keras.optimizers.Optimizer`.

    Two things, both arguments of every kerazoo optimizer:

    - `lr_multipliers`: discriminative learning rates. A dict
      `{regex: factor}`; each variable's learning rate is multiplied by the
      factor of the first pattern that matches the start of its path
      (`re.match` on `variable.path`, e.g. `"body/stage4/conv/kernel"`), and by
      1 when none does. `{"body/.*": 0.1}` trains a pretrained body ten times
      slower than the new head. The factors are resolved once, when the
      optimizer is built, so they cost nothing per step. A pattern that matches
      no variable gives a warning that lists the paths (not an error: the
      optimizer is also built while a saved model loads). Paths of a nested
      functional model keep their prefix after reloading only if it is a
      `kerazoo.models.ScopedModel`. A factor of 0 stops the group's
      gradient updates. Weight decay, when set, is applied by Keras's base
      class before the update, with the unscaled rate, to every variable not
      excluded with `exclude_from_weight_decay`.
    - `skip_nonfinite` (default `True`): a gradient holding a NaN or an
      infinity (tested as a non-finite sum, so a gradient so large that its
      float32 sum overflows counts too) skips that variable's update,
      leaving the variable and its optimizer slots (momentum, averages)
      exactly as they were, and adds one to `optimizer.nonfinite_updates`,
      so that the skip is visible. Other
      variables of the same step are updated normally, and the step counter
      moves on. Weight decay, which depends on the weights alone, still
      applies. With `skip_nonfinite=False` the formula is applied as written,
      and a NaN spreads into the slots and the variable, as in Keras's
      built-ins.

    Args:
        learning_rate: Non-negative float, a `LearningRateSchedule`, or a
            callable taking no arguments.
        lr_multipliers: Optional dict `{regex: non-negative factor}` (0 freezes).
        skip_nonfinite: Whether a non-finite gradient skips its variable's update.
        **kwargs: Base optimizer arguments (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `gradient_accumulation_steps`, `loss_scale_factor`, `name`).
    """

    def __init__(
        self, learning_rate, lr_multipliers=None, skip_nonfinite=True, **kwargs
    ):
        check_learning_rate(learning_rate)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lr_multipliers = _check_multipliers(lr_multipliers)
        self.skip_nonfinite = bool(skip_nonfinite)
        self._lr_factors = []
        # Set while a step checked all its gradients at once (TensorFlow):
        # None for no per-variable checks, or the flags by variable index.
        self._step_finite = _PER_VARIABLE

    def build(self, var_list):
        super().build(var_list)
        self._lr_factors = self._resolve_multipliers(var_list)
        self.nonfinite_updates = None
        if self.skip_nonfinite:
            self.nonfinite_updates = self.add_variable(
                shape=(),
                initializer="zeros",
                dtype="int32",
                aggregation="only_first_replica",
                name="nonfinite_updates",
            )

    def _resolve_multipliers(self, var_list):
        if not self.lr_multipliers:
            return [None] * len(var_list)
        patterns = {p: re.compile(p) for p in self.lr_multipliers}
        used = set()
        factors = []
        for variable in var_list:
            factor = None
            for pattern, regex in patterns.items():
                if regex.match(variable.path):
                    factor = self.lr_multipliers[pattern]
                    used.add(pattern)
                    break
            factors.append(factor)
        unused = [p for p in patterns if p not in used]
        if unused and var_list:
            paths = ", ".join(v.path for v in var_list[:6])
            more = f" (and {len(var_list) - 6} more)" if len(var_list) > 6 else ""
            warnings.warn(
                f"`lr_multipliers` pattern(s) {unused} match none of the "
                f"{len(var_list)} variables; their paths: {paths}{more}. (A "
                "nested model loses its path prefix when reloaded unless it is "
                "a `kerazoo.models.ScopedModel`.)",
                stacklevel=3,
            )
        return factors

    def _prepare(self, gradient, variable, learning_rate):
        """Casts, scales the learning rate by the variable's multiplier, and
        returns `(gradient, learning_rate, finite)`; `finite` is None when
        non-finite gradients are not skipped."""
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        lr = ops.cast(learning_rate, dtype)
        factor = self._lr_factors[self._get_variable_index(variable)]
        if factor is not None:
            lr = lr * ops.cast(factor, dtype)
        if not self.skip_nonfinite:
            return gradient, lr, None
        if self._step_finite is not _PER_VARIABLE:
            # The step checked every gradient before its updates.
            finite = None
            if self._step_finite is not None:
                finite = self._step_finite[self._get_variable_index(variable)]
        else:
            finite = _finite(gradient)
            self.assign_add(
                self.nonfinite_updates, ops.cast(ops.logical_not(finite), "int32")
            )
        if finite is not None and self._skips_by_inputs():
            gradient = ops.where(finite, gradient, ops.zeros_like(gradient))
        return gradient, lr, finite

    def _skips_by_inputs(self):
        """How a guarded update is skipped in this trace.

        Compiled (XLA under TensorFlow, and JAX, whose updates XLA compiles;
        torch follows): by its inputs. A non-finite gradient is replaced by
        zeros, the rule makes each slot's decay 1 (`_unless_skipped`), so
        that every slot's new value is its old one exactly, and the
        variable's step is selected to zero (`_update_sub`). The update stays
        one straight-line computation that XLA fuses, where a conditional
        splits it (benchmarks/RESULTS.md). TensorFlow without XLA: a `cond`
        on the flag, which costs no pass over the tensors."""
        return keras.backend.backend() != "tensorflow" or in_xla_context()

    def _unless_skipped(self, value, finite, neutral):
        """`value`, or `neutral` when this update is skipped by its inputs
        and the gradient is not finite (a decay of 1 keeps a slot as it
        was)."""
        if finite is None or not self._skips_by_inputs():
            return value
        value = ops.convert_to_tensor(value)
        return ops.where(finite, value, ops.cast(neutral, value.dtype))

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        """TensorFlow's update of all variables (Keras's TF optimizer calls it:
        a private hook, overridden under Keras's name; `kerazoo._compat` says
        which versions call it, and `tests/test_compat.py` checks).

        With the guard on and one device, every gradient is tested first (one
        reduction each), the skips are counted once, and one `cond` picks
        between the plain updates (all finite: the usual case, with no
        per-variable conditional, and TensorFlow's fused kernels) and the
        per-variable guarded ones; measured against a cond per variable
        (benchmarks/RESULTS.md), guarded SGD 1.28x instead of 1.38x the
        unguarded time. Under XLA the flags go straight to the updates, which
        skip by their inputs (`_skips_by_inputs`). Under a distribution
        strategy each variable is guarded on its own.
        """
        import tensorflow as tf

        update_all = super()._distributed_tf_update_step
        if not self.skip_nonfinite or tf.distribute.has_strategy():
            return update_all(distribution, grads_and_vars, learning_rate)
        # By the optimizer's variable index: a step may update only some of
        # its variables (Keras drops those without a gradient).
        flags = {
            self._get_variable_index(variable): _finite(
                ops.cast(gradient, variable.dtype)
            )
            for gradient, variable in grads_and_vars
        }
        skipped = ops.sum(
            ops.cast(ops.logical_not(ops.stack(list(flags.values()))), "int32")
        )
        self.nonfinite_updates.assign_add(skipped)

        def run(step_finite):
            def branch():
                self._step_finite = step_finite
                try:
                    update_all(distribution, grads_and_vars, learning_rate)
                finally:
                    self._step_finite = _PER_VARIABLE

            return branch

        if self._skips_by_inputs():
            # Under XLA a cond over the whole step costs up to 1.65x the
            # unguarded step; the updates skipped by their inputs run straight
            # through.
            run(flags)()
        else:
            tf.cond(skipped == 0, run(None), run(flags))

    def _fused_kernels(self, gradient, variable, finite):
        """`tf.raw_ops` when this update may run TensorFlow's fused training
        kernels, else None: `ResourceApplyMomentum` (SGD with momentum and
        Nesterov), `ResourceApplyAdam`, and, for plain SGD, RMSProp and AdaGrad
        (whose epsilon TensorFlow's own kernels place differently), the
        in-place `ResourceApplyGradientDescent` (`var -= alpha * delta`).

        A fused kernel reads each tensor once and writes the variable and its
        slots in place, where the same formula written with ops makes a
        temporary of every intermediate (Keras's built-ins are written that
        way): without XLA the update moves less memory, which pays for the
        guard's test of the gradient (benchmarks/RESULTS.md). Used
        on TensorFlow, without a distribution strategy, for dense float32 and
        float64 gradients, in a step whose gradients are known to be finite
        (or with `skip_nonfinite=False`); the guarded per-variable updates keep
        the generic path. The kernels compute the rule's own formula, to float
        rounding (tested against the generic path)."""
        if (
            finite is not None
            or not self._use_fused_kernels
            or keras.backend.backend() != "tensorflow"
        ):
            return None
        import tensorflow as tf

        if (
            tf.distribute.has_strategy()
            or not isinstance(gradient, tf.Tensor)
            or variable.dtype not in ("float32", "float64")
        ):
            return None
        return tf.raw_ops

    # Whether `_fused_kernels` may return the kernels (benchmarks compare).
    _use_fused_kernels = True

    def _update(self, variable, value, finite):
        """Assigns `value`, unless the gradient was not finite."""
        self._guarded(variable, value, finite, "assign")

    def _update_sub(self, variable, delta, finite):
        """Subtracts `delta`, unless the gradient was not finite."""
        self._guarded(variable, delta, finite, "assign_sub")

    def _guarded(self, variable, tensor, finite, method):
        if finite is None:
            getattr(self, method)(variable, tensor)
        elif self._skips_by_inputs():
            if method == "assign":
                # A slot: with a zero gradient and a decay of 1 the rule's new
                # value is the old one, exactly.
                self.assign(variable, tensor)
            else:
                # The variable's step is not zero with a zero gradient under
                # momentum (theta -= v); a select, not a product, so that an
                # infinite step of a skipped update is dropped too.
                self.assign_sub(
                    variable, ops.where(finite, tensor, ops.zeros_like(tensor))
                )
        else:
            # Without XLA, a cond on the scalar costs no extra pass over the
            # tensor (benchmarks/RESULTS.md compares the two).
            def update():
                getattr(self, method)(variable, tensor)

            ops.cond(finite, update, lambda: None)

    def _hyperparameter(self, value, dtype, offset=0):
        """A float hyperparameter, or a schedule evaluated at step
        `iterations + offset`."""
        if callable(value):
            return ops.cast(value(self.iterations + offset), dtype)
        return ops.cast(value, dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lr_multipliers": self.lr_multipliers,
                "skip_nonfinite": self.skip_nonfinite,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in cls._schedulable:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return super().from_config(config, custom_objects=custom_objects)

    # Names of hyperparameters that may be given as schedules (serialised as
    # Keras objects in the config).
    _schedulable = ()


def serialize_hyperparameter(value):
    if callable(value):
        return keras.saving.serialize_keras_object(value)
    return value
