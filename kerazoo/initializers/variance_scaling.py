import math

import keras
import numpy as np

from kerazoo._checks import check_choice
from kerazoo._checks import check_positive
from kerazoo.api import register

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "uniform", "truncated_normal")

# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape):
    """`(fan_in, fan_out)` of a kernel shape.

    Dense kernels are `(inputs, units)`. Convolution kernels are
    `(*kernel_size, in_channels, out_channels)`: each output unit sees
    `prod(kernel_size) * in_channels` inputs, so both fans are multiplied by the
    receptive-field size. (For a depthwise kernel `(kh, kw, channels, 1)` this
    counts `kh * kw * channels` inputs, as Keras does, although each output
    sees only `kh * kw`.)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    return seed


class _RandomInitializer(keras.initializers.Initializer):
    """Seed handling shared by kerazoo's initializers.

    With an integer `seed` every call returns the same values (as Keras's
    seeded initializers do), so build one initializer per layer. With
    `seed=None` each call draws fresh values from Keras's global generator,
    reproducible after `keras.utils.set_random_seed`.
    """

    def __init__(self, seed=None):
        self.seed = _check_seed(seed)

    def _normal(self, shape, dtype, stddev, mean=0.0):
        return keras.random.normal(
            shape, mean=mean, stddev=stddev, dtype=dtype, seed=self.seed
        )

    def _truncated_normal(self, shape, dtype, stddev):
        """A normal of `stddev` truncated at two standard deviations, by its
        inverse CDF: exact on every backend (Keras's torch backend draws four
        candidates and keeps an out-of-range one when all four are, a few
        values in a million)."""
        bound = math.erf(math.sqrt(2.0))  # 2 Phi(2) - 1
        u = self._uniform(shape, dtype, -bound, bound)
        return keras.ops.erfinv(u) * (math.sqrt(2.0) * stddev)

    def _uniform(self, shape, dtype, minval, maxval):
        return keras.random.uniform(
            shape, minval=minval, maxval=maxval, dtype=dtype, seed=self.seed
        )

    def get_config(self):
        return {"seed": self.seed}


@register
class VarianceScaling(_RandomInitializer):
    """Weights with variance `scale / fan`, the family behind Xavier, He and LeCun.

    `fan` is `fan_in`, `fan_out` or their mean (`mode`), computed over the
    receptive field for convolution kernels (see `compute_fans`). The target
    variance `scale / fan` is met by every `distribution`:

    - `"normal"`: a normal distribution with standard deviation
      `sqrt(scale / fan)` (as the lecture and the papers write it);
    - `"uniform"`: uniform on `[-limit, limit]`, `limit = sqrt(3 * scale / fan)`;
    - `"truncated_normal"`: a normal truncated at two standard deviations, its
      standard deviation corrected so that the variance is still `scale / fan`
      (Keras's choice for its `GlorotNormal`/`HeNormal`).

    Args:
        scale: Positive scaling factor (1 for Xavier and LeCun, 2 for He).
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
        distribution: `"normal"`, `"uniform"` or `"truncated_normal"`.
        seed: Optional integer seed.
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="normal", seed=None):
        super().__init__(seed)
        self.scale = check_positive("scale", scale)
        self.mode = check_choice("mode", mode, MODES)
        self.distribution = check_choice("distribution", distribution, DISTRIBUTIONS)

    def variance(self, shape):
        """The variance this initializer gives a kernel of `shape`."""
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        return self.scale / max(1.0, fan[self.mode])

    def __call__(self, shape, dtype=None):
        variance = self.variance(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return self._uniform(shape, dtype, -limit, limit)
        if self.distribution == "truncated_normal":
            return self._truncated_normal(
                shape, dtype, math.sqrt(variance) / _TRUNCATED_STD
            )
        return self._normal(shape, dtype, math.sqrt(variance))

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


@register
class XavierNormal(VarianceScaling):
    """Xavier (Glorot) normal initialization: variance `2 / (fan_in + fan_out)`.

    Keeps the variance of activations and of back-propagated gradients roughly
    constant through layers with a symmetric activation that is linear near 0
    (tanh, softsign). Draws from a normal distribution with that variance.

    Args:
        seed: Optional integer seed.

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class XavierUniform(VarianceScaling):
    """Xavier (Glorot) uniform initialization: variance `2 / (fan_in + fan_out)`.

    Keeps the variance of activations and of back-propagated gradients roughly
    constant through layers with a symmetric activation that is linear near 0
    (tanh, softsign). Draws uniformly from `[-sqrt(3 var), sqrt(3 var)]`.

    Args:
        seed: Optional integer seed.

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class HeNormal(VarianceScaling):
    """He normal initialization: variance `2 / fan_in`.

    The factor 2 makes up for ReLU zeroing half of its inputs, so the variance
    of pre-activations stays constant through ReLU layers.
    Draws from a normal distribution with that variance.

    Args:
        seed: Optional integer seed.

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class HeUniform(VarianceScaling):
    """He uniform initialization: variance `2 / fan_in`.

    The factor 2 makes up for ReLU zeroing half of its inputs, so the variance
    of pre-activations stays constant through ReLU layers.
    Draws uniformly from `[-sqrt(3 var), sqrt(3 var)]`.

    Args:
        seed: Optional integer seed.

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """

    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class LeCunNormal(VarianceScaling):
    """LeCun normal initialization: variance `1 / fan_in`.

    Keeps unit variance through linear layers (and SELU
    networks). Draws from a normal distribution with that variance.

    Args:
        seed: Optional integer seed.

    Reference:
        LeCun et al., "Efficient BackProp", 1998.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class LeCunUniform(VarianceScaling):
    """LeCun uniform initialization: variance `1 / fan_in`.

    Keeps unit variance through linear layers (and SELU
    networks). Draws uniformly from `[-sqrt(3 var), sqrt(3 var)]`.

    Args:
        seed: Optional integer seed.

    Reference:
        LeCun et al., "Efficient BackProp", 1998.
    """

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


@register
class Normal(_RandomInitializer):
    """Weights from a fixed normal distribution `N(mean, stddev ** 2)`.

    The lecture's "small random numbers": too small a `stddev` makes activations
    vanish through depth, too large makes them explode (see
    `kerazoo init-report`).

    Args:
        mean: Mean of the distribution.
        stddev: Positive standard deviation.
        seed: Optional integer seed.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = float(mean)
        self.stddev = check_positive("stddev", stddev)

    def __call__(self, shape, dtype=None):
        return self._normal(shape, dtype, self.stddev, self.mean)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@register
class Uniform(_RandomInitializer):
    """Weights drawn uniformly from `[minval, maxval)`.

    Args:
        minval: Lower bound.
        maxval: Upper bound, greater than `minval`.
        seed: Optional integer seed.
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        if not (np.isfinite(minval) and np.isfinite(maxval) and maxval > minval):
            raise ValueError(
                "`maxval` must be greater than `minval`. Received: "
                f"minval={minval!r}, maxval={maxval!r}"
            )
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return self._uniform(shape, dtype, self.minval, self.maxval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}
