"""Porting keras.applications models (and their ImageNet weights) into kerazoo's
own architectures.

`from_keras_application` builds the kerazoo twin of a Keras model and fills it
with the family's `KerasApplicationConverter` (registered by the family, in
`kerazoo/models/<family>/convert_keras.py`), whose source is the Keras model's
variables by path (`conv1_conv/kernel`): Keras's layouts are kerazoo's, so the
ports only rename, and fold a convolution's bias into the batch norm after it.
`imagenet_weights` declares the manifest entry of a keras.applications file.
"""

import numpy as np

from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import converted_models
from kerazoo.weights.convert import find_converter
from kerazoo.weights.manifest import WeightsEntry

SOURCE = "keras_applications"


class KerasApplicationConverter(Converter):
    """Base of the converters from `keras.applications` models.

    Attributes:
        copies_preprocessing: Whether the source normalises its input inside
            (Rescaling and Normalization layers, as EfficientNet's do); the
            port's `"preprocessing"` layer then computes the same affine map
            (mode `"custom"`).
        classifier: Name of the source's classifier layer (`"predictions"`,
            keras.applications' usual name); a family whose name differs, or
            depends on the Keras model, overrides `classifier_name`.
    """

    source = SOURCE
    copies_preprocessing = False
    classifier = "predictions"

    def classifier_name(self, keras_model):
        """Name of `keras_model`'s classifier layer (present or not)."""
        return self.classifier

    def classifier_layer(self, keras_model):
        """`keras_model`'s classifier layer, or None when it has none
        (`include_top=False`, or a model cut before it)."""
        name = self.classifier_name(keras_model)
        for layer in keras_model.layers:
            if layer.name == name:
                return layer
        return None


def imagenet_weights(
    model,
    application,
    url,
    md5,
    *,
    converter,
    preprocessing,
    input_size=224,
    sha256="",
):
    """The manifest entry of keras.applications' ImageNet file for `model`.

    Args:
        model: Registered name.
        application: The `keras.applications` constructor (`"ResNet50"`).
        url: Where Keras publishes the file.
        md5: The md5 Keras publishes for it (the download's sha256 is
            recorded in the cache), or `""` when Keras publishes a sha256.
        converter: The family's `KerasApplicationConverter` class; its
            `options` are the options the ported weights need.
        preprocessing: The `ImagePreprocessing` mode of the port
            (`"custom"` when the converter copies the source's own).
        input_size: Image side of the weights.
        sha256: The sha256 Keras publishes for it, when it publishes one (as
            for ConvNeXt); the cache then checks it instead of `md5`.
    """
    return WeightsEntry(
        model=model,
        tag="imagenet",
        converter=SOURCE,
        classes=1000,
        input_size=input_size,
        preprocessing=preprocessing,
        license="Apache-2.0 (keras.applications)",
        source=f"keras.applications.{application}(weights='imagenet'), ported",
        url=url,
        md5=md5,
        sha256=sha256,
        application=application,
        options=tuple(converter.options.items()),
    )


def _affine_of_preprocessing(keras_model):
    """The per-channel `x * scale + offset` that the source's Rescaling and
    Normalization layers (before its first convolution) compute together."""
    # Keras (and its backend) only when a model is ported: importing the
    # weights package stays light.
    import keras

    scale, offset = np.ones(3), np.zeros(3)
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            factor = np.broadcast_to(np.asarray(layer.scale, "float64"), (3,))
            shift = np.broadcast_to(np.asarray(layer.offset, "float64"), (3,))
            scale, offset = scale * factor, offset * factor + shift
        elif isinstance(layer, keras.layers.Normalization):
            # An adapted (or loaded) layer keeps its statistics in variables.
            mean = getattr(layer, "adapt_mean", None)
            variance = getattr(layer, "adapt_variance", None)
            if mean is None:
                mean, variance = layer.mean, layer.variance
            mean = np.asarray(keras.ops.convert_to_numpy(mean), "float64").reshape(-1)
            variance = keras.ops.convert_to_numpy(variance).astype("float64")
            std = np.maximum(np.sqrt(variance.reshape(-1)), keras.config.epsilon())
            scale, offset = scale / std, (offset - mean) / std
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.ZeroPadding2D)):
            break
    return scale, offset


def _build_twin(keras_model, name, converter, build):
    """The kerazoo model `name` with `keras_model`'s input size, classifier
    (classes and activation; the layer the family's `converter` names) or
    pooling, built with the converter's `options`."""
    options = converter.options
    head = converter.classifier_layer(keras_model)
    input_shape = tuple(keras_model.inputs[0].shape[1:])
    if head is not None:
        activation = head.get_config()["activation"]
        return build(
            name,
            # The output's width: MobileNetV3's "predictions" is an
            # Activation after a 1x1 convolution, not a Dense layer.
            num_classes=keras_model.outputs[0].shape[-1],
            input_shape=input_shape,
            classifier_activation=None if activation == "linear" else activation,
            **options,
        )
    rank = len(keras_model.outputs[0].shape)
    has_max = any(
        type(layer).__name__ == "GlobalMaxPooling2D" for layer in keras_model.layers
    )
    pooling = None if rank == 4 else ("max" if has_max else "avg")
    return build(
        name, input_shape=input_shape, include_top=False, pooling=pooling, **options
    )


def from_keras_application(keras_model, name, *, build):
    """The kerazoo model `name` computing the same function as `keras_model`.

    Supports the models whose family registers a `KerasApplicationConverter`:
    `keras.applications` ResNet50/101/152 (`"resnet50"` ...),
    DenseNet121/169/201 (`"densenet121"` ...), EfficientNetB0-B7
    (`"efficientnet_b0"` ...), ConvNeXtTiny-Large (`"convnext_tiny"` ...) and
    the other registered families, with or without their classifier (the
    layer the family's converter names: `"predictions"`, ConvNeXt's
    `"{name}_head_dense"`). The kerazoo
    model is built to match: the original bottleneck (`stride_on="1x1"`),
    Keras's batch-norm epsilon (1.001e-5), the same
    preprocessing inside the model ("caffe" for ResNet, "torch" for DenseNet:
    what `keras.applications.*.preprocess_input` does; for EfficientNet, whose
    Rescaling and Normalization layers are part of the model, the affine map
    they compute together), and the source's input size and classes.
    ResNet's convolution biases are folded into the batch norms that follow
    them (kerazoo's convolutions have none). Every variable and shape is
    checked before any is assigned.

    Args:
        keras_model: A `keras.applications.ResNet50(...)`-style model, with
            random or ImageNet weights.
        name: The kerazoo name of the same architecture.
        build: What builds it: `kerazoo.models.create_model` (or a function
            with its signature); this module does not import `kerazoo.models`.

    Returns:
        A kerazoo model (functional, with a `"body"`).

    Example:

    ```python
    from kerazoo.models import create_model

    source = keras.applications.ResNet50(weights="imagenet")
    model = from_keras_application(source, "resnet50", build=create_model)
    ```
    """
    supported = converted_models(SOURCE)
    if name not in supported:
        raise ValueError(f"Cannot port {name!r}; supported: {', '.join(supported)}.")
    converter = find_converter(SOURCE, name)
    model = _build_twin(keras_model, name, converter, build)
    source = {v.path: v.numpy() for v in keras_model.weights}
    converter.apply(model, source, origin=repr(keras_model.name))
    if converter.copies_preprocessing:
        model.get_layer("preprocessing").set_affine(
            *_affine_of_preprocessing(keras_model)
        )
    return model
