"""kerazoo's initializers and the tools that show whether they do their job.

Initializers (`keras.initializers.Initializer` subclasses, seedable and
serialisable): `XavierNormal`, `XavierUniform`, `HeNormal`, `HeUniform`,
`LeCunNormal`, `LeCunUniform` (all `VarianceScaling`), `Normal`, `Uniform`;
`get(name)`.

Tools: `reinitialize(model, name)` (every kernel drawn again: from scratch),
`activation_stats(model, x)` (per-layer output mean/std, and gradient
statistics), `lsuv_init(model, x)` and `init_report(...)` (the
`kerazoo init-report` command).
"""

from kerazoo.initializers.apply import reinitialize
from kerazoo.initializers.lsuv import lsuv_init
from kerazoo.initializers.names import get
from kerazoo.initializers.report import init_report
from kerazoo.initializers.stats import ActivationStats
from kerazoo.initializers.stats import activation_stats
from kerazoo.initializers.stats import plot_stats
from kerazoo.initializers.variance_scaling import HeNormal
from kerazoo.initializers.variance_scaling import HeUniform
from kerazoo.initializers.variance_scaling import LeCunNormal
from kerazoo.initializers.variance_scaling import LeCunUniform
from kerazoo.initializers.variance_scaling import Normal
from kerazoo.initializers.variance_scaling import Uniform
from kerazoo.initializers.variance_scaling import VarianceScaling
from kerazoo.initializers.variance_scaling import XavierNormal
from kerazoo.initializers.variance_scaling import XavierUniform
from kerazoo.initializers.variance_scaling import compute_fans

__all__ = [
    "ActivationStats",
    "HeNormal",
    "HeUniform",
    "LeCunNormal",
    "LeCunUniform",
    "Normal",
    "Uniform",
    "VarianceScaling",
    "XavierNormal",
    "XavierUniform",
    "activation_stats",
    "compute_fans",
    "get",
    "init_report",
    "lsuv_init",
    "plot_stats",
    "reinitialize",
]
