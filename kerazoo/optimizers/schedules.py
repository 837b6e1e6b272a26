"""Learning-rate (and momentum) schedules: warmup + cosine, one-cycle, step decay.

Each is a serialisable `keras.optimizers.schedules.LearningRateSchedule`: pass it
as `learning_rate` to any optimizer (and, for one-cycle's momentum, as
`momentum` to `kerazoo.optimizers.SGD` or `beta_1` to `Adam`/`AdamW`). Steps
count optimizer updates from 0.
"""

import math

import keras
from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_non_negative
from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int
from kerazoo.api import register

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _cosine(start, end, fraction):
    """Cosine interpolation from `start` (fraction 0) to `end` (fraction 1)."""
    return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * fraction))


def _progress(step, begin, length):
    """Fraction of the way through [begin, begin + length], clipped to [0, 1]."""
    return ops.clip((step - begin) / max(length, 1), 0.0, 1.0)


@register
class WarmupCosine(LearningRateSchedule):
    """Linear warmup to a peak, then cosine decay.

    For step s: during the first `warmup_steps` the rate rises linearly from
    `initial_learning_rate` to `peak_learning_rate`; it then falls along half a
    cosine to `final_learning_rate` at `total_steps`, and stays there.

    Args:
        peak_learning_rate: The rate at the end of warmup.
        total_steps: Steps of warmup and decay together.
        warmup_steps: Steps of linear warmup (0 for none).
        initial_learning_rate: The rate at step 0.
        final_learning_rate: The rate at `total_steps` and after.

    Example:

    >>> schedule = WarmupCosine(0.1, total_steps=1000, warmup_steps=100)
    >>> round(float(schedule(100)), 6)
    0.1

    Reference:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017; Goyal et al., "Accurate, Large Minibatch SGD",
        2017 (warmup).
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        initial_learning_rate=0.0,
        final_learning_rate=0.0,
    ):
        self.peak_learning_rate = check_non_negative(
            "peak_learning_rate", peak_learning_rate
        )
        self.total_steps = check_positive_int("total_steps", total_steps)
        if not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "`warmup_steps` must be an integer in [0, total_steps]. Received: "
                f"warmup_steps={warmup_steps!r}, total_steps={total_steps}"
            )
        self.warmup_steps = warmup_steps
        self.initial_learning_rate = check_non_negative(
            "initial_learning_rate", initial_learning_rate
        )
        self.final_learning_rate = check_non_negative(
            "final_learning_rate", final_learning_rate
        )

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.initial_learning_rate + (
            self.peak_learning_rate - self.initial_learning_rate
        ) * _progress(step, 0, self.warmup_steps)
        decay = _cosine(
            self.peak_learning_rate,
            self.final_learning_rate,
            _progress(step, self.warmup_steps, self.total_steps - self.warmup_steps),
        )
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "final_learning_rate": self.final_learning_rate,
        }


def _check_one_cycle(total_steps, pct_start):
    check_positive_int("total_steps", total_steps)
    if not (isinstance(pct_start, (int, float)) and 0 < pct_start < 1):
        raise ValueError(
            f"`pct_start` must be a number in (0, 1). Received: pct_start={pct_start!r}"
        )
    return round(total_steps * pct_start)


@register
class OneCycle(LearningRateSchedule):
    """The one-cycle policy's learning rate (Smith 2018, as fastai runs it).

    Rises along half a cosine from `max_learning_rate / div_factor` to
    `max_learning_rate` over the first `pct_start` of `total_steps`, then falls
    along half a cosine to `max_learning_rate / (div_factor * final_div_factor)`.
    The momentum moves the opposite way (high while the rate is low): get that
    schedule with `momentum_schedule()` and pass it as SGD's `momentum` or
    Adam's `beta_1`.

    Args:
        max_learning_rate: The peak rate.
        total_steps: Length of the cycle in steps.
        pct_start: Fraction of the cycle spent rising.
        div_factor: The starting rate is `max_learning_rate / div_factor`.
        final_div_factor: The final rate is the starting rate divided by this.

    Example:

    >>> from kerazoo.optimizers import SGD
    >>> cycle = OneCycle(0.5, total_steps=1000)
    >>> optimizer = SGD(cycle, momentum=cycle.momentum_schedule())

    Reference:
        Smith, "A disciplined approach to neural network hyper-parameters:
        Part 1", 2018, arXiv:1803.09820.
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e4,
    ):
        self.max_learning_rate = check_positive("max_learning_rate", max_learning_rate)
        self.total_steps = total_steps
        self.pct_start = pct_start
        self._rise = _check_one_cycle(total_steps, pct_start)
        self.div_factor = check_positive("div_factor", div_factor)
        self.final_div_factor = check_positive("final_div_factor", final_div_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = self.max_learning_rate / self.div_factor
        end = start / self.final_div_factor
        rising = _cosine(start, self.max_learning_rate, _progress(step, 0, self._rise))
        falling = _cosine(
            self.max_learning_rate,
            end,
            _progress(step, self._rise, self.total_steps - self._rise),
        )
        return ops.where(step < self._rise, rising, falling)

    def momentum_schedule(self, base_momentum=0.85, max_momentum=0.95):
        """The matching momentum schedule (`OneCycleMomentum`)."""
        return OneCycleMomentum(
            self.total_steps, self.pct_start, base_momentum, max_momentum
        )

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


@register
class OneCycleMomentum(LearningRateSchedule):
    """The one-cycle policy's momentum: falls from `max_momentum` to
    `base_momentum` while the learning rate rises, then climbs back.

    Pass it as `momentum` to `kerazoo.optimizers.SGD` or as `beta_1` to
    `kerazoo.optimizers.Adam`/`AdamW`.

    Args:
        total_steps: Length of the cycle in steps (as in `OneCycle`).
        pct_start: Fraction of the cycle spent with the rate rising.
        base_momentum: The momentum at the peak learning rate.
        max_momentum: The momentum at the start and the end.
    """

    def __init__(
        self, total_steps, pct_start=0.25, base_momentum=0.85, max_momentum=0.95
    ):
        self.total_steps = total_steps
        self.pct_start = pct_start
        self._rise = _check_one_cycle(total_steps, pct_start)
        self.base_momentum = check_fraction("base_momentum", base_momentum)
        self.max_momentum = check_fraction("max_momentum", max_momentum)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        falling = _cosine(
            self.max_momentum, self.base_momentum, _progress(step, 0, self._rise)
        )
        rising = _cosine(
            self.base_momentum,
            self.max_momentum,
            _progress(step, self._rise, self.total_steps - self._rise),
        )
        return ops.where(step < self._rise, falling, rising)

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
        }


@register
class StepDecay(LearningRateSchedule):
    """Multiplies the rate by `gamma` every `step_size` steps.

    `lr(s) = initial_learning_rate * gamma ** floor(s / step_size)`.

    Args:
        initial_learning_rate: The rate for the first `step_size` steps.
        step_size: Steps between decays.
        gamma: The factor applied at each decay, in (0, 1].

    Example:

    >>> schedule = StepDecay(0.1, step_size=30, gamma=0.1)
    >>> round(float(schedule(65)), 6)
    0.001
    """

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        self.initial_learning_rate = check_non_negative(
            "initial_learning_rate", initial_learning_rate
        )
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_fraction(
            "gamma", gamma, low_inclusive=False, high_inclusive=True
        )

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decays = ops.floor(step / self.step_size)
        return self.initial_learning_rate * ops.power(self.gamma, decays)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
        }
