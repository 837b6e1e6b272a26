"""Building a registered model: `create_model` (preprocessing, a `"body"`, the
head, and weights when asked) and `model_info`.

Weights come from `kerazoo.weights`, which takes a built model and never
imports `kerazoo.models`: where it must build a model itself (porting
keras.applications weights into the cache on first use) it is given
`create_model` as its `build`.
"""

import dataclasses
import math

import keras

from kerazoo._checks import check_choice
from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive_int
from kerazoo._compat import call_outputs
from kerazoo.models.googlenet import auxiliary_classifier
from kerazoo.models.preprocessing import ImagePreprocessing
from kerazoo.models.registry import registered_model
from kerazoo.models.scoped import ScopedModel
from kerazoo.models.scoped import scoped_model
from kerazoo.weights import find_weights
from kerazoo.weights import load_pretrained
from kerazoo.weights.files import is_weights_path
from kerazoo.weights.files import load_weights_file
from kerazoo.weights.manifest import available_weights
from kerazoo.weights.torch_files import build_options
from kerazoo.weights.torch_files import is_torch_path
from kerazoo.weights.torch_files import load_torch_file
from kerazoo.weights.torch_files import read_tensors


def model_info(name):
    """The `ModelInfo` of a registered model, with the tags of its pretrained
    weights; an unknown name suggests close ones."""
    return dataclasses.replace(registered_model(name), weights=available_weights(name))


def create_model(
    name,
    num_classes=None,
    input_shape=None,
    weights=None,
    include_top=True,
    pooling="avg",
    dropout=None,
    classifier_activation="softmax",
    preprocessing=None,
    reset_head=False,
    weights_map=None,
    features_only=False,
    out_indices=None,
    **family_options,
):
    """Builds a registered model: preprocessing, a `"body"`, then the head.

    The model takes raw RGB images (0-255, channels last) and normalises them
    inside (layer `"preprocessing"`). Its body is a nested model named `"body"`
    (a `ScopedModel`, so its variable paths start with `body/` for good), made of
    `stem`, `stage1` ... `stageN` (and, for some families, `top`), each a nested
    model a user can freeze or unfreeze. The head is global pooling (layer
    `"pool"`), for some families a `Dense` `"pre_logits"` (`ModelInfo.pre_logits`:
    MobileNetV3), dropout and a `Dense` named `"predictions"`.

    Args:
        name: A registered name (`list_models()`).
        num_classes: Classes of the classifier; default: the model's own
            (1000 for the ImageNet networks, 10 for the CIFAR ones).
        input_shape: `(height, width, 3)`; default: the model's square size.
        weights: `None` (random initialization) or the tag of pretrained
            weights in `kerazoo.weights.MANIFEST` (`"imagenet"`;
            `ModelInfo.weights` lists them). With a `num_classes` other than
            the weights' own, the body is loaded and the new head keeps its
            random initialization (the usual start of fine-tuning). Or a
            local `.keras` file (loaded with `safe_mode=True`) or `.weights.h5`
            file of the same architecture: every weight is checked before any
            is assigned, and a mismatch names the first one and both shapes.
            Or a PyTorch checkpoint (`.pth`, `.pt`, `.bin`, `.ckpt`) or a
            `.safetensors` file, read without torch, with `weights_map`;
            torchvision's and timm's ResNet, ConvNeXt and EfficientNet state
            dicts and torchvision's MobileNetV3 ones need none, and the model
            is then built with the options they need
            (`padding="symmetric"`, PyTorch's padding of the strided
            convolutions, so the logits are torch's at every image size).
        include_top: False returns the body's features: pooled by `pooling`, or
            the feature map when `pooling=None`.
        pooling: `"avg"`, `"max"`, or None (only with `include_top=False`).
        dropout: Dropout rate before the classifier; default per family.
        classifier_activation: Activation of `"predictions"` (`"softmax"`, or
            None for logits).
        preprocessing: `ImagePreprocessing` mode; default per family.
        reset_head: With a weights file whose classifier has another number of
            classes, keep the new (random) classifier instead of refusing.
        weights_map: For a PyTorch checkpoint: a dict from the model's
            variable paths to the checkpoint's keys, or a function of the path
            (`kerazoo.weights.torch_files`).
        features_only: Return a model of the body's multi-scale feature maps
            (for detection and segmentation), as timm's `features_only`: at
            each output stride of the stem and stages (2, 4, 8, 16, 32 for
            most ImageNet families), the last stage's output at that stride,
            before any `top` convolution. Outputs are named `stride{S}`.
            `include_top`, `pooling`, `dropout` and `num_classes` do not apply.
        out_indices: With `features_only`, which of those levels to return
            (indices into the model's strides, in increasing order; negative
            indices count from the end); default: all.
        **family_options: Options of the family (e.g. `inception="naive"` for
            GoogLeNet).

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = create_model("resnet18", num_classes=10, input_shape=(64, 64, 3))
    >>> model.get_layer("body").get_layer("stage4").name
    'stage4'
    """
    if features_only:
        model = create_model(
            name,
            num_classes,
            input_shape=input_shape,
            weights=weights,
            include_top=False,
            pooling=None,
            preprocessing=preprocessing,
            reset_head=reset_head,
            weights_map=weights_map,
            **family_options,
        )
        return feature_maps(model, out_indices)
    if out_indices is not None:
        raise ValueError("`out_indices` needs `features_only=True`.")
    info = model_info(name)
    num_classes = info.num_classes if num_classes is None else num_classes
    check_positive_int("num_classes", num_classes)
    check_choice("pooling", pooling, ("avg", "max", None))
    if pooling is None and include_top:
        raise ValueError("`pooling=None` needs `include_top=False`.")
    arguments = dict(
        input_shape=input_shape,
        include_top=include_top,
        pooling=pooling,
        dropout=dropout,
        classifier_activation=classifier_activation,
        preprocessing=preprocessing,
        **family_options,
    )
    if is_torch_path(weights):
        tensors = read_tensors(weights)
        if weights_map is None:
            # A file a converter knows by its names (torchvision's ResNets, ...)
            # needs the model built with that converter's options.
            arguments = build_options(name, tensors, arguments, origin=str(weights))
        model = create_model(name, num_classes, **arguments)
        return load_torch_file(
            model, weights, weights_map, reset_head=reset_head, tensors=tensors
        )
    if weights_map is not None:
        raise ValueError("`weights_map` applies to PyTorch checkpoints only.")
    if is_weights_path(weights):
        model = create_model(name, num_classes, **arguments)
        return load_weights_file(
            model,
            weights,
            lambda classes: create_model(name, classes, **arguments),
            reset_head=reset_head,
        )
    entry = None
    if weights is not None:
        entry = find_weights(name, weights)
        # "custom": the affine map recorded with the weights, set when loading.
        expected = info.preprocessing if entry.preprocessing == "custom" else None
        expected = expected or entry.preprocessing
        if preprocessing not in (None, expected):
            raise ValueError(
                f"The {weights!r} weights of {name!r} expect preprocessing "
                f"{entry.preprocessing!r}. Received: preprocessing={preprocessing!r}"
            )
        preprocessing = expected
        for key, value in entry.options:
            if family_options.setdefault(key, value) != value:
                raise ValueError(
                    f"The {weights!r} weights of {name!r} need {key}={value!r}. "
                    f"Received: {key}={family_options[key]!r}"
                )
    input_shape = _check_input_shape(info, input_shape)
    dropout = info.dropout if dropout is None else dropout
    check_fraction("dropout", dropout)
    mode = preprocessing or info.preprocessing

    inputs = keras.Input(input_shape, name="image")
    x = ImagePreprocessing(mode, name="preprocessing")(inputs)
    body = scoped_model(
        "body",
        lambda t: info.build_body(t, **family_options),
        # In the preprocessing's dtype: under mixed precision the body then
        # takes its input as its first convolution computes, with no cast.
        keras.Input(input_shape, dtype=x.dtype, name="body_input"),
    )
    features = body(x)
    extra = []
    if isinstance(features, (list, tuple)):
        features, extra = features[0], list(features[1:])
    if not include_top:
        if pooling == "avg":
            features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        elif pooling == "max":
            features = keras.layers.GlobalMaxPooling2D(name="pool")(features)
        return _with_weights(keras.Model(inputs, features, name=name), entry, False)
    pool = (
        keras.layers.GlobalAveragePooling2D
        if pooling == "avg"
        else keras.layers.GlobalMaxPooling2D
    )
    x = pool(name="pool")(features)
    if info.pre_logits is not None:
        units, activation = info.pre_logits
        x = keras.layers.Dense(units, activation=activation, name="pre_logits")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions"
    )(x)
    if extra:
        aux = [
            auxiliary_classifier(t, num_classes, classifier_activation, f"aux{i + 1}")
            for i, t in enumerate(extra)
        ]
        return _with_weights(
            keras.Model(inputs, [outputs, *aux], name=name), entry, False
        )
    head = entry is not None and num_classes == entry.classes
    return _with_weights(keras.Model(inputs, outputs, name=name), entry, head)


def feature_levels(model):
    """`{stride: tensor}` of a zoo model's body, in increasing stride: at each
    output stride of the stem and the stages, the last one's output (symbolic
    tensors of the body's graph)."""
    body = model.get_layer("body")
    height = model.inputs[0].shape[1]
    levels = {}
    for layer in body.layers:
        if layer.name != "stem" and not layer.name.startswith("stage"):
            continue
        (outputs,) = call_outputs(layer)  # each module is called once
        tensor = outputs[0]
        levels[2 ** round(math.log2(height / tensor.shape[1]))] = tensor
    return dict(sorted(levels.items()))


def feature_maps(model, out_indices=None):
    """A model of `model`'s feature maps (`create_model(features_only=True)`):
    the same layers and weights, outputs `stride{S}` at the levels that
    `out_indices` picks from `feature_levels` (default: all)."""
    levels = feature_levels(model)
    strides = list(levels)
    indices = list(range(len(strides))) if out_indices is None else list(out_indices)
    described = ", ".join(f"{i} (stride {s})" for i, s in enumerate(strides))
    if not indices or any(
        not isinstance(i, int) or not -len(strides) <= i < len(strides) for i in indices
    ):
        raise ValueError(
            f"`out_indices` of {model.name!r} pick among its feature levels "
            f"{described}. Received: out_indices={out_indices!r}"
        )
    chosen = sorted({strides[i] for i in indices})
    body = model.get_layer("body")
    features = ScopedModel(
        body.inputs, [levels[s] for s in chosen], name="body"
    )  # the body's own layers and variables, more outputs
    maps = features(model.get_layer("preprocessing").output)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    outputs = [
        keras.layers.Identity(name=f"stride{s}")(t)
        for s, t in zip(chosen, maps, strict=True)
    ]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")


def _with_weights(model, entry, head):
    if entry is None:
        return model
    return load_pretrained(model, entry.model, entry.tag, head=head, build=create_model)


def _check_input_shape(info, input_shape):
    if input_shape is None:
        return (info.input_size, info.input_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "`input_shape` must be (height, width, 3): raw RGB images, channels "
            f"last. Received: input_shape={input_shape}"
        )
    for side in input_shape[:2]:
        if side is not None and side < info.min_input_size:
            raise ValueError(
                f"{info.name!r} needs inputs of at least {info.min_input_size}x"
                f"{info.min_input_size} (its strides shrink the image by that "
                f"much). Received: input_shape={input_shape}"
            )
    return input_shape
