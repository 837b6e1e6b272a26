"""Porting keras.applications models (and their ImageNet weights) into kerazoo's
own architectures.

`from_keras_application` builds the kerazoo twin of a Keras model and fills it
with a `KerasApplicationConverter` (`kerazoo.pretrained.convert`), whose source
is the Keras model's variables by path (`conv1_conv/kernel`): Keras's layouts
are kerazoo's, so the ports only rename, and fold a convolution's bias into
the batch norm after it.
"""

import numpy as np

from kerazoo.pretrained.convert import Converter
from kerazoo.pretrained.convert import Port
from kerazoo.pretrained.convert import keras_batch_norm
from kerazoo.pretrained.convert import keras_conv_bn
from kerazoo.pretrained.convert import keras_head
from kerazoo.pretrained.convert import keras_layer


class KerasApplicationConverter(Converter):
    """Base of the converters from `keras.applications` models.

    Attributes:
        copies_preprocessing: Whether the source normalises its input inside
            (Rescaling and Normalization layers, as EfficientNet's do); the
            port's `"preprocessing"` layer then computes the same affine map
            (mode `"custom"`).
    """

    source = "keras_applications"
    copies_preprocessing = False


def stages(model):
    """The body's stages of `model`, in order."""
    body = model.get_layer("body")
    return [layer for layer in body.layers if layer.name.startswith("stage")]


def blocks(stage):
    """The layers of a stage named `block...`, in order."""
    return [layer for layer in stage.layers if layer.name.startswith("block")]


class ResNetKerasConverter(KerasApplicationConverter):
    """keras.applications ResNet50/101/152 (v1: the stride on the first 1x1
    convolution of a block, Keras's batch-norm epsilon; the convolutions'
    biases folded into the batch norms)."""

    models = ("resnet50", "resnet101", "resnet152")
    options = {"stride_on": "1x1", "norm_epsilon": 1.001e-5}

    def ports(self, model, source):
        stem = model.get_layer("body").get_layer("stem")
        ports = keras_conv_bn(
            stem.get_layer("conv1"),
            stem.get_layer("conv1_bn"),
            "conv1_conv",
            "conv1_bn",
            source,
        )
        for s, stage in enumerate(stages(model)):
            for j, block in enumerate(blocks(stage)):
                prefix = f"conv{s + 2}_block{j + 1}"
                pairs = zip(block.convs, block.norms, strict=True)
                for k, (conv, norm) in enumerate(pairs):
                    ports += keras_conv_bn(
                        conv,
                        norm,
                        f"{prefix}_{k + 1}_conv",
                        f"{prefix}_{k + 1}_bn",
                        source,
                    )
                if block.projection is not None:
                    ports += keras_conv_bn(
                        block.projection,
                        block.projection_norm,
                        f"{prefix}_0_conv",
                        f"{prefix}_0_bn",
                        source,
                    )
        return [*ports, *keras_head()]


class DenseNetKerasConverter(KerasApplicationConverter):
    """keras.applications DenseNet121/169/201 (Keras's batch-norm epsilon)."""

    models = ("densenet121", "densenet169", "densenet201")
    options = {"norm_epsilon": 1.001e-5}

    def ports(self, model, source):
        stem = model.get_layer("body").get_layer("stem")
        ports = keras_conv_bn(
            stem.get_layer("conv1"),
            stem.get_layer("conv1_bn"),
            "conv1_conv",
            "conv1_bn",
            source,
        )
        for s, stage in enumerate(stages(model)):
            dense = stage.get_layer("dense_block")
            for j, layers in enumerate(dense.dense_layers):
                bn1, _, conv1, bn2, _, conv2 = layers
                prefix = f"conv{s + 2}_block{j + 1}"
                ports += keras_batch_norm(bn1, f"{prefix}_0_bn")
                ports += keras_conv_bn(
                    conv1, bn2, f"{prefix}_1_conv", f"{prefix}_1_bn", source
                )
                ports += keras_layer(conv2, f"{prefix}_2_conv")
            if "transition" in {layer.name for layer in stage.layers}:
                transition = stage.get_layer("transition")
                ports += keras_batch_norm(transition.norm, f"pool{s + 2}_bn")
                ports += keras_layer(transition.conv, f"pool{s + 2}_conv")
            else:
                ports += keras_batch_norm(stage.get_layer("final_bn"), "bn")
        return [*ports, *keras_head()]


class EfficientNetKerasConverter(KerasApplicationConverter):
    """keras.applications EfficientNetB0-B7: block `j` of stage `s` is Keras's
    `block{s}{a, b, ...}_`; the Rescaling and Normalization layers become the
    port's preprocessing."""

    models = tuple(f"efficientnet_b{i}" for i in range(8))
    copies_preprocessing = True
    # The input normalization's statistics: reproduced by the preprocessing.
    ignored = (r"normalization(_\d+)?/",)

    def ports(self, model, source):
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        ports = keras_conv_bn(
            stem.get_layer("conv"),
            stem.get_layer("conv_bn"),
            "stem_conv",
            "stem_bn",
            source,
        )
        for s, stage in enumerate(stages(model)):
            for j, block in enumerate(blocks(stage)):
                prefix = f"block{s + 1}{chr(ord('a') + j)}_"
                if block.expand is not None:
                    ports += keras_conv_bn(
                        block.expand,
                        block.expand_norm,
                        f"{prefix}expand_conv",
                        f"{prefix}expand_bn",
                        source,
                    )
                ports.append(
                    Port(block.depthwise.kernel.path, (f"{prefix}dwconv/kernel",))
                )
                ports += keras_batch_norm(block.depthwise_norm, f"{prefix}bn")
                if block.se is not None:
                    ports += keras_layer(block.se.reduce, f"{prefix}se_reduce")
                    ports += keras_layer(block.se.expand, f"{prefix}se_expand")
                ports += keras_conv_bn(
                    block.project,
                    block.project_norm,
                    f"{prefix}project_conv",
                    f"{prefix}project_bn",
                    source,
                )
        ports += keras_conv_bn(
            top.get_layer("conv"),
            top.get_layer("conv_bn"),
            "top_conv",
            "top_bn",
            source,
        )
        return [*ports, *keras_head()]


CONVERTERS = {
    name: converter
    for converter in (
        ResNetKerasConverter(),
        DenseNetKerasConverter(),
        EfficientNetKerasConverter(),
    )
    for name in converter.models
}


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


def _build_twin(keras_model, name, options, build):
    """The kerazoo model `name` with `keras_model`'s input size, classifier
    (classes and activation) or pooling, built with `options`."""
    names = {layer.name for layer in keras_model.layers}
    head = keras_model.get_layer("predictions") if "predictions" in names else None
    input_shape = tuple(keras_model.inputs[0].shape[1:])
    if head is not None:
        activation = head.get_config()["activation"]
        return build(
            name,
            num_classes=head.units,
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

    Supports `keras.applications` ResNet50/101/152 (`"resnet50"` ...),
    DenseNet121/169/201 (`"densenet121"` ...) and EfficientNetB0-B7
    (`"efficientnet_b0"` ...), with or without their classifier. The kerazoo
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
    converter = CONVERTERS.get(name)
    if converter is None:
        raise ValueError(f"Cannot port {name!r}; supported: {', '.join(CONVERTERS)}.")
    model = _build_twin(keras_model, name, converter.options, build)
    source = {v.path: v.numpy() for v in keras_model.weights}
    converter.apply(model, source, origin=repr(keras_model.name))
    if converter.copies_preprocessing:
        model.get_layer("preprocessing").set_affine(
            *_affine_of_preprocessing(keras_model)
        )
    return model
