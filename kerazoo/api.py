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


def get_object(identifier, kind, base_class, names, build):
    """The `get(identifier)` of kerazoo's optimizers and initializers.

    Args:
        identifier: An instance of `base_class`, returned as it is; a name,
            `build(name)`; a dict `{"name": NAME, **arguments}`,
            `build(NAME, **arguments)`; or a Keras serialization dict
            (`{"class_name": ..., "config": ...}`), deserialised.
        kind: What is got (`"optimizer"`), for the errors.
        base_class: The class of the instances returned as they are.
        names: The valid names, listed when a dict has no `"name"`.
        build: `build(name, **arguments)` -> a new instance.
    """
    if isinstance(identifier, base_class):
        return identifier
    if isinstance(identifier, str):
        return build(identifier)
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        if "name" not in identifier:
            raise ValueError(
                f"An {kind} dict needs a 'name' key (one of "
                f"{', '.join(names)}). Received: {identifier}"
            )
        arguments = dict(identifier)
        return build(arguments.pop("name"), **arguments)
    raise ValueError(
        f"Expected an {kind} name, dict or instance. "
        f"Received: identifier={identifier!r}"
    )
