"""The one registration decorator for kerazoo's serialisable objects."""

import keras

PACKAGE = "kerazoo"


def register(cls):
    """Registers `cls` with Keras serialization as `"kerazoo>ClassName"`.

    Registered classes reload from `.keras` files with `safe_mode=True` and no
    `custom_objects`.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def load_model(path, **kwargs):
    """`keras.saving.load_model(path, safe_mode=True, ...)` after importing every
    kerazoo module that registers classes, so that a `.keras` file of a kerazoo
    model loads in a process that has not built one yet.

    Example:

    >>> model = load_model("runs/quickstart/model.keras")  # doctest: +SKIP
    """
    import importlib

    for module in ("layers", "models", "optimizers", "initializers"):
        importlib.import_module(f"kerazoo.{module}")
    return keras.saving.load_model(path, safe_mode=True, **kwargs)
