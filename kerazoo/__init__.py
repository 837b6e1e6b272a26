"""kerazoo: a Keras 3 model zoo and transfer-learning toolkit.

Subpackages are imported on first use, so `import kerazoo` stays cheap and never
imports TensorFlow by itself: `kerazoo.layers` runs under any Keras backend.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "layers",
    "optimizers",
    "initializers",
    "models",
    "weights",
    "testing",
    "data",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name):
    if name == "pretrained":
        import warnings

        warnings.warn(
            "kerazoo.pretrained is now kerazoo.weights", DeprecationWarning, 2
        )
        name = "weights"
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
