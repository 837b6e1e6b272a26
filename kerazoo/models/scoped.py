import keras

from kerazoo.api import register


@register
class ScopedModel(keras.Model):
    """A functional model whose variable paths start with its name, for good.

    Keras gives a variable the path of the name scopes it was built in. A
    nested functional model built inside `keras.name_scope("body")` has paths
    such as `"body/fc/kernel"`, but a reloaded one has lost the prefix
    (`"fc/kernel"`), so whatever selects variables by path (for instance
    `lr_multipliers={"body/.*": 0.1}` of kerazoo's optimizers) would stop
    matching after `keras.models.load_model`. A `ScopedModel` rebuilds its
    layers inside its own name scope when it is deserialised, so its paths
    survive saving and loading. Build one with `scoped_model`.
    """

    @classmethod
    def from_config(cls, config, custom_objects=None):
        with keras.name_scope(config["name"]):
            return super().from_config(config, custom_objects=custom_objects)


def scoped_model(name, build_fn, inputs):
    """Builds a `ScopedModel` whose layers live under `name/`.

    Args:
        name: The model's name, and the first part of its variable paths.
        build_fn: A function mapping the input tensor(s) to the output
            tensor(s), creating the layers it calls.
        inputs: The `keras.Input`(s) of the model.

    Returns:
        A `ScopedModel`.

    Example:

    >>> import keras
    >>> body = scoped_model(
    ...     "body", lambda x: keras.layers.Dense(4, name="fc")(x), keras.Input((3,))
    ... )
    >>> [v.path for v in body.weights]
    ['body/fc/kernel', 'body/fc/bias']
    """
    with keras.name_scope(name):
        outputs = build_fn(inputs)
    return ScopedModel(inputs, outputs, name=name)
