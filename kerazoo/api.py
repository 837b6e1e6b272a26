"""The one registration decorator for kerazoo's serialisable objects."""

import keras

PACKAGE = "kerazoo"


def register(cls):
    """Registers `cls` with Keras serialization as `"kerazoo>ClassName"`.

    Registered classes reload from `.keras` files with `safe_mode=True` and no
    `custom_objects`.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
