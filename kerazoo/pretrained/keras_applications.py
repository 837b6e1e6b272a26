"""Porting keras.applications models (and their ImageNet weights) into kerazoo's
own architectures."""

import re

import numpy as np

from kerazoo.pretrained.assign import WeightMismatchError
from kerazoo.pretrained.assign import assign_checked

_RESNET_DEPTHS = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}
_DENSENET_BLOCKS = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
}


def _bn_pairs(target, source, conv_bias=None):
    """Batch-norm pairs; a bias of the convolution before it is folded into the
    moving mean: BN(conv(x) + b) == BN'(conv(x)) with mean' = mean - b."""
    mean = source.moving_mean.numpy()
    if conv_bias is not None:
        mean = mean - conv_bias
    return [
        (target.gamma, source.gamma.numpy()),
        (target.beta, source.beta.numpy()),
        (target.moving_mean, mean),
        (target.moving_variance, source.moving_variance.numpy()),
    ]


def _conv_pairs(target_conv, target_bn, source_conv, source_bn):
    bias = source_conv.bias.numpy() if source_conv.use_bias else None
    kernel = (target_conv.kernel, source_conv.kernel.numpy())
    return [kernel, *_bn_pairs(target_bn, source_bn, bias)]


def _stem_pairs(body, source):
    """The 7x7 stem convolution and its batch norm (ResNet and DenseNet)."""
    stem = body.get_layer("stem")
    return _conv_pairs(
        stem.get_layer("conv1"),
        stem.get_layer("conv1_bn"),
        source.get_layer("conv1_conv"),
        source.get_layer("conv1_bn"),
    )


def _resnet_pairs(model, source, depths):
    body = model.get_layer("body")
    pairs = _stem_pairs(body, source)
    for s, depth in enumerate(depths):
        stage = body.get_layer(f"stage{s + 1}")
        for j in range(depth):
            block = stage.get_layer(f"block{j + 1}")
            prefix = f"conv{s + 2}_block{j + 1}"
            for k in range(3):
                pairs += _conv_pairs(
                    block.convs[k],
                    block.norms[k],
                    source.get_layer(f"{prefix}_{k + 1}_conv"),
                    source.get_layer(f"{prefix}_{k + 1}_bn"),
                )
            if block.projection is not None:
                pairs += _conv_pairs(
                    block.projection,
                    block.projection_norm,
                    source.get_layer(f"{prefix}_0_conv"),
                    source.get_layer(f"{prefix}_0_bn"),
                )
    return pairs


def _densenet_pairs(model, source, blocks):
    body = model.get_layer("body")
    pairs = _stem_pairs(body, source)
    for s, layers in enumerate(blocks):
        stage = body.get_layer(f"stage{s + 1}")
        dense = stage.get_layer("dense_block")
        for j in range(layers):
            bn1, _, conv1, bn2, _, conv2 = dense.dense_layers[j]
            prefix = f"conv{s + 2}_block{j + 1}"
            pairs += _bn_pairs(bn1, source.get_layer(f"{prefix}_0_bn"))
            pairs += _conv_pairs(
                conv1,
                bn2,
                source.get_layer(f"{prefix}_1_conv"),
                source.get_layer(f"{prefix}_1_bn"),
            )
            pairs.append(
                (conv2.kernel, source.get_layer(f"{prefix}_2_conv").kernel.numpy())
            )
        if s < len(blocks) - 1:
            transition = stage.get_layer("transition")
            pairs += _bn_pairs(transition.norm, source.get_layer(f"pool{s + 2}_bn"))
            pairs.append(
                (
                    transition.conv.kernel,
                    source.get_layer(f"pool{s + 2}_conv").kernel.numpy(),
                )
            )
        else:
            pairs += _bn_pairs(stage.get_layer("final_bn"), source.get_layer("bn"))
    return pairs


_EFFICIENTNETS = tuple(f"efficientnet_b{i}" for i in range(8))


def _affine_of_preprocessing(keras_model):
    """The per-channel `x * scale + offset` that the source's Rescaling and
    Normalization layers (before its first convolution) compute together."""
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


def _efficientnet_pairs(model, source):
    body = model.get_layer("body")
    stem, top = body.get_layer("stem"), body.get_layer("top")
    pairs = _conv_pairs(
        stem.get_layer("conv"),
        stem.get_layer("conv_bn"),
        source.get_layer("stem_conv"),
        source.get_layer("stem_bn"),
    )
    prefixes = []
    for layer in source.layers:
        match = re.match(r"(block\d+[a-z]+_)", layer.name)
        if match and match.group(1) not in prefixes:
            prefixes.append(match.group(1))
    blocks = [
        block
        for stage in body.layers
        if stage.name.startswith("stage")
        for block in stage.layers
        if block.name.startswith("block")
    ]
    if len(prefixes) != len(blocks):
        raise ValueError(f"{len(prefixes)} MBConv blocks, kerazoo has {len(blocks)}")
    for block, prefix in zip(blocks, prefixes, strict=True):

        def get(suffix, prefix=prefix):
            return source.get_layer(prefix + suffix)

        if block.expand is not None:
            pairs += _conv_pairs(
                block.expand, block.expand_norm, get("expand_conv"), get("expand_bn")
            )
        pairs.append((block.depthwise.kernel, get("dwconv").kernel.numpy()))
        pairs += _bn_pairs(block.depthwise_norm, get("bn"))
        if block.se is not None:
            for ours, theirs in (
                (block.se.reduce, "se_reduce"),
                (block.se.expand, "se_expand"),
            ):
                pairs.append((ours.kernel, get(theirs).kernel.numpy()))
                pairs.append((ours.bias, get(theirs).bias.numpy()))
        pairs += _conv_pairs(
            block.project, block.project_norm, get("project_conv"), get("project_bn")
        )
    pairs += _conv_pairs(
        top.get_layer("conv"),
        top.get_layer("conv_bn"),
        source.get_layer("top_conv"),
        source.get_layer("top_bn"),
    )
    return pairs


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
    them (kerazoo's convolutions have none).

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
    if name in _RESNET_DEPTHS:
        options = {"stride_on": "1x1", "norm_epsilon": 1.001e-5}
    elif name in _DENSENET_BLOCKS:
        options = {"norm_epsilon": 1.001e-5}
    elif name in _EFFICIENTNETS:
        options = {}
    else:
        supported = ", ".join([*_RESNET_DEPTHS, *_DENSENET_BLOCKS, *_EFFICIENTNETS])
        raise ValueError(f"Cannot port {name!r}; supported: {supported}.")
    names = {layer.name for layer in keras_model.layers}
    head = keras_model.get_layer("predictions") if "predictions" in names else None
    input_shape = tuple(keras_model.inputs[0].shape[1:])
    if head is not None:
        activation = head.get_config()["activation"]
        model = build(
            name,
            num_classes=head.units,
            input_shape=input_shape,
            classifier_activation=None if activation == "linear" else activation,
            **options,
        )
    else:
        rank = len(keras_model.outputs[0].shape)
        has_max = any(
            type(layer).__name__ == "GlobalMaxPooling2D" for layer in keras_model.layers
        )
        pooling = None if rank == 4 else ("max" if has_max else "avg")
        model = build(
            name, input_shape=input_shape, include_top=False, pooling=pooling, **options
        )
    try:
        if name in _RESNET_DEPTHS:
            pairs = _resnet_pairs(model, keras_model, _RESNET_DEPTHS[name])
        elif name in _EFFICIENTNETS:
            pairs = _efficientnet_pairs(model, keras_model)
            model.get_layer("preprocessing").set_affine(
                *_affine_of_preprocessing(keras_model)
            )
        else:
            pairs = _densenet_pairs(model, keras_model, _DENSENET_BLOCKS[name])
    except ValueError as error:
        raise WeightMismatchError(
            f"{keras_model.name!r} does not have the layers of {name!r}: {error}"
        ) from None
    if head is not None:
        pairs.append((model.get_layer("predictions").kernel, head.kernel.numpy()))
        pairs.append((model.get_layer("predictions").bias, head.bias.numpy()))
    assign_checked([(v, np.asarray(a)) for v, a in pairs])
    return model
