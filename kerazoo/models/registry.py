"""The model registry: the families register their models into it
(`register_model`); `list_models` and `registered_model` read it.

A leaf of `kerazoo.models`: it imports no family and nothing that builds or
loads a model. `kerazoo.models` imports the families (which fills it) and
`kerazoo.models.create`, which builds the registered models.
"""

import dataclasses
import fnmatch
import re

from kerazoo._checks import check_choice
from kerazoo._checks import unknown_name_error
from kerazoo.models.preprocessing import MODES


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
            `kerazoo.weights.MANIFEST` (filled in by
            `kerazoo.models.model_info`; empty here).
        paper: Reference.
        num_classes: Default number of classes (1000; 10 for the CIFAR
            networks).
        params: Trainable parameters with the default options and classes (the
            published size; the tests build every model and check it).
        pre_logits: `(units, activation)` of a `Dense` layer `"pre_logits"`
            that the classifier puts between the pooling and the dropout, or
            None. MobileNetV3 has one (its 1x1 convolution on the pooled
            features); it is part of the head, so `include_top=False` leaves it
            out, as keras.applications does.
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
    pre_logits: tuple = None


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
    pre_logits=None,
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
            pre_logits=pre_logits,
        )
        return fn

    return decorator


def list_models(pattern=None):
    """Registered model names, sorted; `pattern` filters with shell wildcards
    (`"resnet*"`)."""
    names = sorted(_REGISTRY, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def _natural_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def registered_model(name):
    """The `ModelInfo` registered under `name` (its `weights` empty); an
    unknown name suggests close ones."""
    if name not in _REGISTRY:
        raise unknown_name_error(
            "model",
            name,
            _REGISTRY,
            listing="`kerazoo.models.list_models()` (or `kerazoo models`) lists "
            "all of them.",
        )
    return _REGISTRY[name]
