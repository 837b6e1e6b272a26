"""The model registry: `register_model`, `list_models`, `create_model`."""

import dataclasses
import fnmatch
import re

import keras

from kerazoo._checks import check_choice
from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive_int
from kerazoo._checks import unknown_name_error
from kerazoo.models.preprocessing import MODES
from kerazoo.models.preprocessing import ImagePreprocessing
from kerazoo.models.scoped import scoped_model


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model.

    Attributes:
        name: Registered name.
        family: `"googlenet"`, `"resnet"`, `"densenet"`, `"efficientnet"`, ...
        build_body: `build_body(inputs, **family_options)` builds the body's
            graph (stem and stages) on a preprocessed image tensor and returns
            its output tensor (or a list, main output first).
        input_size: Default square input size.
        min_input_size: Smallest input side the architecture accepts.
        preprocessing: `ImagePreprocessing` mode the model uses by default.
        dropout: Default dropout rate before the classifier.
        weights: Tags of the pretrained weights in
            `kerazoo.pretrained.MANIFEST` (filled in by `model_info`).
        paper: Reference.
        num_classes: Default number of classes (1000; 10 for the CIFAR
            networks).
        params: Trainable parameters with the default options and classes (the
            published size; the tests build every model and check it).
    """

    name: str
    family: str
    build_body: object
    input_size: int
    min_input_size: int
    preprocessing: str
    dropout: float = 0.0
    weights: tuple = ()
    paper: str = ""
    num_classes: int = 1000
    params: int = None


_REGISTRY = {}


def register_model(
    name=None,
    *,
    family,
    input_size,
    min_input_size=32,
    preprocessing="torch",
    dropout=0.0,
    paper="",
    num_classes=1000,
    params=None,
):
    """Registers a body factory under `name` (default: the function's name).

    The decorated function takes the preprocessed input tensor and the family's
    options and builds the body graph, returning its output tensor(s).

    Example:

    ```python
    @register_model(family="resnet", input_size=224)
    def resnet50(inputs, **options):
        return resnet_body(inputs, "bottleneck", (3, 4, 6, 3), **options)
    ```
    """
    check_choice("preprocessing", preprocessing, tuple(MODES))

    def decorator(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"A model named {key!r} is already registered.")
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family,
            build_body=fn,
            input_size=input_size,
            min_input_size=min_input_size,
            preprocessing=preprocessing,
            dropout=dropout,
            paper=paper,
            num_classes=num_classes,
            params=params,
        )
        return fn

    return decorator


def _ensure_registered():
    # Importing the family modules registers their models.
    from kerazoo.models import densenet  # noqa: F401
    from kerazoo.models import efficientnet  # noqa: F401
    from kerazoo.models import googlenet  # noqa: F401
    from kerazoo.models import resnet  # noqa: F401


def list_models(pattern=None):
    """Registered model names, sorted; `pattern` filters with shell wildcards
    (`"resnet*"`)."""
    _ensure_registered()
    names = sorted(_REGISTRY, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def _natural_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def model_info(name):
    """The `ModelInfo` of a registered model; an unknown name suggests close
    ones."""
    _ensure_registered()
    if name not in _REGISTRY:
        raise unknown_name_error(
            "model",
            name,
            _REGISTRY,
            listing="`kerazoo.models.list_models()` (or `kerazoo models`) lists "
            "all of them.",
        )
    from kerazoo.pretrained.manifest import available_weights

    return dataclasses.replace(_REGISTRY[name], weights=available_weights(name))


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
    **family_options,
):
    """Builds a registered model: preprocessing, a `"body"`, then the head.

    The model takes raw RGB images (0-255, channels last) and normalises them
    inside (layer `"preprocessing"`). Its body is a nested model named `"body"`
    (a `ScopedModel`, so its variable paths start with `body/` for good), made of
    `stem`, `stage1` ... `stageN` (and, for some families, `top`), each a nested
    model a user can freeze or unfreeze. The head is global pooling (layer
    `"pool"`), dropout and a `Dense` named `"predictions"`.

    Args:
        name: A registered name (`list_models()`).
        num_classes: Classes of the classifier; default: the model's own
            (1000 for the ImageNet networks, 10 for the CIFAR ones).
        input_shape: `(height, width, 3)`; default: the model's square size.
        weights: `None` (random initialization) or the tag of pretrained
            weights in `kerazoo.pretrained.MANIFEST` (`"imagenet"`;
            `ModelInfo.weights` lists them). With a `num_classes` other than
            the weights' own, the body is loaded and the new head keeps its
            random initialization (the usual start of fine-tuning). Or a
            local `.keras` file (loaded with `safe_mode=True`) or `.weights.h5`
            file of the same architecture: every weight is checked before any
            is assigned, and a mismatch names the first one and both shapes.
            Or a PyTorch checkpoint (`.pth`, `.pt`, `.bin`, `.ckpt`), read
            without torch, with `weights_map`.
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
            (`kerazoo.pretrained.torch_files`).
        **family_options: Options of the family (e.g. `inception="naive"` for
            GoogLeNet).

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = create_model("resnet18", num_classes=10, input_shape=(64, 64, 3))
    >>> model.get_layer("body").get_layer("stage4").name
    'stage4'
    """
    info = model_info(name)
    num_classes = info.num_classes if num_classes is None else num_classes
    check_positive_int("num_classes", num_classes)
    check_choice("pooling", pooling, ("avg", "max", None))
    if pooling is None and include_top:
        raise ValueError("`pooling=None` needs `include_top=False`.")
    from kerazoo.pretrained.files import is_weights_path
    from kerazoo.pretrained.torch_files import is_torch_path

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
        from kerazoo.pretrained.torch_files import load_torch_file

        model = create_model(name, num_classes, **arguments)
        return load_torch_file(model, weights, weights_map, reset_head=reset_head)
    if weights_map is not None:
        raise ValueError("`weights_map` applies to PyTorch checkpoints only.")
    if is_weights_path(weights):
        from kerazoo.pretrained.files import load_weights_file

        model = create_model(name, num_classes, **arguments)
        return load_weights_file(
            model,
            weights,
            lambda classes: create_model(name, classes, **arguments),
            reset_head=reset_head,
        )
    entry = None
    if weights is not None:
        from kerazoo.pretrained import find_weights

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
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions"
    )(x)
    if extra:
        from kerazoo.models.googlenet import auxiliary_classifier

        aux = [
            auxiliary_classifier(t, num_classes, classifier_activation, f"aux{i + 1}")
            for i, t in enumerate(extra)
        ]
        return _with_weights(
            keras.Model(inputs, [outputs, *aux], name=name), entry, False
        )
    head = entry is not None and num_classes == entry.classes
    return _with_weights(keras.Model(inputs, outputs, name=name), entry, head)


def _with_weights(model, entry, head):
    if entry is None:
        return model
    from kerazoo.pretrained import load_pretrained

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
