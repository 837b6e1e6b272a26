"""Converters: a weight source's named tensors onto a kerazoo model's variables.

A converter lists, for a built model, where each of its variables comes from:
a `Port` names the variable's path, the source tensor(s) that fill it and the
layout transform between them. The transforms that every source needs
(PyTorch's OIHW convolutions to Keras's HWIO, depthwise kernels, dense
kernels, batch norm's names, epsilon and folded biases) are declared here once,
and so are the port builders for the usual layers (`torch_conv`,
`torch_batch_norm`, `keras_layer`, ...).

Converters belong to the model families (`kerazoo/models/<family>/convert_*.py`),
which register them (`register_converter`); the weights code finds the one for
a manifest entry with `find_converter(entry.converter, entry.model)` and never
imports `kerazoo.models`.

`Converter.apply(model, source)` checks the whole plan before it assigns
anything: every variable of the model is covered (the classifier may be left
out, `head=False`), every source name exists, every source tensor is used (or
ignored on purpose, `Converter.ignored`) and every shape matches. Otherwise it
raises `WeightMismatchError` naming the first mismatches, and the model keeps
its own weights.

Example:

```python
import keras
import numpy as np

from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_head


class TinyConverter(Converter):
    source = "tiny_torch"  # the manifest entries' `converter`

    def ports(self, model, source):
        return [
            *torch_conv(model.get_layer("conv"), "features.0"),
            *torch_head("fc"),
        ]


inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x))
state = {  # PyTorch's layouts: OIHW, (out, in)
    "features.0.weight": np.ones((4, 3, 3, 3)),
    "features.0.bias": np.zeros(4),
    "fc.weight": np.ones((2, 4)),
    "fc.bias": np.zeros(2),
}
TinyConverter().apply(model, state)
```
"""

import dataclasses
import difflib
import re

import numpy as np

from kerazoo.weights.assign import HEAD
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.assign import assign_checked

# How many mismatches an error names before counting the rest.
_SHOWN = 3


# Layout transforms ------------------------------------------------------------


def identity(value):
    """The tensor as it is (the source has Keras's layout already)."""
    return value


def conv_kernel(kernel):
    """A PyTorch convolution kernel, OIHW, as Keras's HWIO."""
    return np.transpose(kernel, (2, 3, 1, 0))


def depthwise_kernel(kernel, multiplier=1):
    """A PyTorch depthwise kernel, `(C * M, 1, kh, kw)` (groups = C), as
    Keras's `(kh, kw, C, M)` (`M`: the depth multiplier)."""
    channels, inputs, kh, kw = kernel.shape
    if inputs != 1 or channels % multiplier:
        raise ValueError(
            "A depthwise kernel is (C * M, 1, kh, kw) with M the depth multiplier. "
            f"Received: shape={tuple(kernel.shape)}, multiplier={multiplier}"
        )
    kernel = np.reshape(kernel, (channels // multiplier, multiplier, kh, kw))
    return np.transpose(kernel, (2, 3, 0, 1))


def dense_kernel(kernel):
    """A PyTorch linear weight, `(out, in)`, as Keras's `(in, out)`."""
    return np.transpose(kernel)


def fold_bias_into_mean(mean, bias):
    """A batch norm's moving mean with the bias of the convolution before it
    folded in: `BN(conv(x) + b)` equals `BN'(conv(x))` with `mean' = mean - b`
    (kerazoo's convolutions before a batch norm have no bias)."""
    return mean - bias


def variance_for_epsilon(source_epsilon, epsilon):
    """The transform of a moving variance from a batch norm with
    `source_epsilon` to one with `epsilon`, so that `var + epsilon` (and the
    normalised output) stays the same."""

    def transform(variance):
        return variance + (source_epsilon - epsilon)

    return transform


# Ports -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Port:
    """One variable of the model and where it comes from.

    Attributes:
        target: The variable's path (`"body/stem/conv/kernel"`).
        sources: Names of the source tensors, the arguments of `transform`.
        transform: Maps the source tensors (NumPy arrays) to the variable's
            value, in the variable's layout.
        optional: Skipped, not an error, when the model has no such variable
            (a part of the head that `include_top=False` leaves out). Ports
            of the classifier, `"predictions/..."`, always are.
    """

    target: str
    sources: tuple
    transform: object = identity
    optional: bool = False


# PyTorch's names of each Keras variable.
TORCH_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _torch_ports(layer, key, kernel_transform):
    ports = [Port(layer.kernel.path, (f"{key}.weight",), kernel_transform)]
    if getattr(layer, "use_bias", False):
        ports.append(Port(layer.bias.path, (f"{key}.bias",)))
    return ports


def torch_conv(layer, key):
    """Ports of a `Conv2D` from PyTorch's `{key}.weight` (OIHW) and
    `{key}.bias` (when the layer has one)."""
    return _torch_ports(layer, key, conv_kernel)


def torch_depthwise(layer, key):
    """Ports of a `DepthwiseConv2D` from PyTorch's grouped `{key}.weight`."""
    multiplier = getattr(layer, "depth_multiplier", 1)
    return _torch_ports(layer, key, lambda kernel: depthwise_kernel(kernel, multiplier))


def torch_dense(layer, key):
    """Ports of a `Dense` from PyTorch's `{key}.weight` (`(out, in)`) and
    `{key}.bias`."""
    return _torch_ports(layer, key, dense_kernel)


def torch_head(key):
    """Ports of kerazoo's classifier (`"predictions"`, a `Dense`) from
    PyTorch's `{key}.weight` and `{key}.bias`; skipped, not missing, when the
    model has no classifier or keeps its own."""
    return [
        Port(f"{HEAD}kernel", (f"{key}.weight",), dense_kernel),
        Port(f"{HEAD}bias", (f"{key}.bias",)),
    ]


def _norm_variables(layer):
    return {
        "gamma": layer.gamma,
        "beta": layer.beta,
        "moving_mean": layer.moving_mean,
        "moving_variance": layer.moving_variance,
    }


def _variance_transform(layer, source_epsilon):
    if source_epsilon is None or source_epsilon == layer.epsilon:
        return identity
    return variance_for_epsilon(source_epsilon, layer.epsilon)


def torch_batch_norm(layer, key, epsilon=None):
    """Ports of a batch norm from PyTorch's `{key}.weight`, `.bias`,
    `.running_mean` and `.running_var`. `epsilon`: the source's, when it
    differs from the layer's (the variance is then adjusted to match)."""
    return [
        Port(
            variable.path,
            (f"{key}.{TORCH_NAMES[name]}",),
            _variance_transform(layer, epsilon)
            if name == "moving_variance"
            else identity,
        )
        for name, variable in _norm_variables(layer).items()
    ]


def keras_layer(layer, key):
    """Ports of every variable of `layer` from a Keras layer named `key` with
    the same variables (`{key}/kernel`, `{key}/bias`, ...), layouts unchanged."""
    return [Port(v.path, (f"{key}/{v.name}",)) for v in layer.weights]


def keras_head(key="predictions"):
    """Ports of kerazoo's classifier from a Keras `Dense` named `key`, as
    `torch_head`."""
    return [
        Port(f"{HEAD}kernel", (f"{key}/kernel",)),
        Port(f"{HEAD}bias", (f"{key}/bias",)),
    ]


def keras_batch_norm(layer, key, conv=None, epsilon=None):
    """Ports of a batch norm from a Keras `BatchNormalization` named `key`.
    `conv`: the source convolution before it, whose bias (when it has one) is
    folded into the moving mean; `epsilon` as in `torch_batch_norm`."""
    ports = []
    for name, variable in _norm_variables(layer).items():
        sources, transform = (f"{key}/{name}",), identity
        if name == "moving_mean" and conv is not None:
            sources, transform = (*sources, f"{conv}/bias"), fold_bias_into_mean
        elif name == "moving_variance":
            transform = _variance_transform(layer, epsilon)
        ports.append(Port(variable.path, sources, transform))
    return ports


def keras_conv_bn(conv, norm, source_conv, source_norm, source):
    """Ports of a kerazoo convolution and the batch norm after it from a Keras
    convolution `source_conv` (bias folded when `source` has it) and batch norm
    `source_norm`."""
    folded = source_conv if f"{source_conv}/bias" in source else None
    return [
        Port(conv.kernel.path, (f"{source_conv}/kernel",)),
        *keras_batch_norm(norm, source_norm, conv=folded),
    ]


# Converters ------------------------------------------------------------------


class Converter:
    """Maps one weight source's tensor names onto kerazoo models.

    A subclass implements `ports(model, source)`; `apply` does the checking
    and the assigning.

    Attributes:
        source: The name manifest entries give as their `converter`
            (`"efficientnet_lite"`, `"keras_applications"`).
        models: Registered names of the models it converts.
        options: Family options a model must be built with to take these
            weights (e.g. `{"stride_on": "1x1"}`).
        ignored: Regular expressions of source names left unused on purpose
            (e.g. PyTorch's `num_batches_tracked`); any other unused source
            tensor refuses the conversion (a larger model's file).
    """

    source = ""
    models = ()
    options = {}
    ignored = ()

    def recognizes(self, source):
        """Whether `source`'s tensor names are the ones this converter reads,
        so that a file needs no `weights_map` (`recognizing_converter`);
        False unless a converter says how to tell."""
        return False

    def ports(self, model, source):
        """The `Port`s that fill `model` from `source` (a mapping of names to
        arrays), its classifier `"predictions"` included. May raise
        `WeightMismatchError` when `source` is plainly another architecture."""
        raise NotImplementedError

    def apply(self, model, source, *, head=True, origin="The source"):
        """Fills `model` from `source`, all or nothing.

        Args:
            model: A built kerazoo model.
            source: Mapping of source names to arrays.
            head: False keeps the model's own classifier (`"predictions/..."`);
                its source tensors then go unused. A model without a
                classifier (`include_top=False`) needs none either way.
            origin: What `source` is, for error messages (a file, a model).

        Returns:
            `model`.
        """
        assign_checked(
            plan(
                model,
                source,
                self.ports(model, source),
                head=head,
                ignored=self.ignored,
                origin=origin,
            )
        )
        return model


def plan(model, source, ports, *, head=True, ignored=(), origin="The source"):
    """The checked `(variable, value)` pairs of `ports`; raises
    `WeightMismatchError` (nothing assigned) when they do not cover the model,
    name a source tensor that is missing, leave one unused or mismatch a
    shape."""
    variables = {v.path: v for v in model.weights}
    chosen, skipped = _choose(model, variables, list(ports), head)
    _check_sources(model, source, chosen, origin)
    _check_unused(source, chosen, skipped, ignored, origin)
    pairs = [
        (
            variables[p.target],
            np.asarray(p.transform(*(np.asarray(source[k]) for k in p.sources))),
        )
        for p in chosen
    ]
    mismatched = [
        f"{v.path}: the model has {tuple(v.shape)}, the weights {tuple(a.shape)}"
        for v, a in pairs
        if tuple(v.shape) != tuple(a.shape)
    ]
    if mismatched:
        hint = (
            " For a new number of classes load without the head."
            if mismatched[0].startswith(HEAD)
            else ""
        )
        raise WeightMismatchError(
            f"{origin} does not fit {model.name!r}: shape mismatch at "
            f"{_first(mismatched)}. Nothing was loaded.{hint}"
        )
    return pairs


def _first(items):
    shown = "; ".join(items[:_SHOWN])
    more = len(items) - _SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _choose(model, variables, ports, head):
    """The ports to apply and those skipped (the classifier's, when it is not
    loaded); a port for a variable the model lacks, a variable ported twice and
    a variable left out are errors of the converter or of the model's options."""
    chosen, skipped, seen, strange = [], [], set(), []
    for p in ports:
        if p.target.startswith(HEAD) and (not head or p.target not in variables):
            skipped.append(p)
        elif p.optional and p.target not in variables:
            skipped.append(p)
        elif p.target not in variables:
            strange.append(p.target)
        elif p.target in seen:
            raise WeightMismatchError(f"The converter fills {p.target} twice.")
        else:
            seen.add(p.target)
            chosen.append(p)
    if strange:
        raise WeightMismatchError(
            f"{model.name!r} has no variable {_first(strange)}: is it built with "
            "other options? Nothing was loaded."
        )
    missing = [
        f"{path} {tuple(v.shape)}"
        for path, v in variables.items()
        if path not in seen and (head or not path.startswith(HEAD))
    ]
    if missing:
        raise WeightMismatchError(
            f"Nothing fills {_first(missing)} of {model.name!r}: is it built "
            "with other options? Nothing was loaded."
        )
    return chosen, skipped


def _check_sources(model, source, ports, origin):
    missing = [(k, p.target) for p in ports for k in p.sources if k not in source]
    if missing:
        key, target = missing[0]
        close = difflib.get_close_matches(key, list(source), n=3)
        hint = f" Close names: {', '.join(close)}." if close else ""
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightMismatchError(
            f"{origin} does not have the layers of {model.name!r}: no {key!r} "
            f"(for {target}){more}.{hint} Nothing was loaded."
        )


def _check_unused(source, chosen, skipped, ignored, origin):
    used = {k for p in (*chosen, *skipped) for k in p.sources}
    patterns = [re.compile(pattern) for pattern in ignored]
    unused = [
        k for k in source if k not in used and not any(p.match(k) for p in patterns)
    ]
    if unused:
        raise WeightMismatchError(
            f"{origin} has {len(unused)} tensor(s) that nothing takes: "
            f"{_first(unused)}. Is it a larger model? Nothing was loaded."
        )


def body_stages(model):
    """The stages (`stage1` ... `stageN`) of a kerazoo model's `"body"`, in
    order."""
    body = model.get_layer("body")
    return [layer for layer in body.layers if layer.name.startswith("stage")]


def stage_blocks(stage, prefix="block"):
    """The layers of a stage whose names start with `prefix`, in order."""
    return [layer for layer in stage.layers if layer.name.startswith(prefix)]


# Registered converters, in registration order.
_CONVERTERS = []


def register_converter(converter):
    """Registers `converter` (an instance) for its `source` and `models`; a
    family's `__init__` calls it. Returns `converter`."""
    for name in converter.models:
        for other in _CONVERTERS:
            if other.source == converter.source and name in other.models:
                raise ValueError(
                    f"A {converter.source!r} converter for {name!r} is already "
                    f"registered ({type(other).__name__})."
                )
    _CONVERTERS.append(converter)
    return converter


def converted_models(source):
    """Names of the models that registered converters from `source` fill."""
    return [name for c in _CONVERTERS if c.source == source for name in c.models]


def find_converter(source, model):
    """The registered converter from `source` (a manifest entry's
    `converter`) for the registered model `model`."""
    for converter in _CONVERTERS:
        if converter.source == source and model in converter.models:
            return converter
    known = ", ".join(converted_models(source)) or "none (is kerazoo.models imported?)"
    raise ValueError(
        f"No {source!r} converter for {model!r}. Models it converts: {known}."
    )


def recognizing_converter(model, source):
    """The registered converter for the model named `model` that recognises
    `source`'s tensor names (`Converter.recognizes`), or None."""
    for converter in _CONVERTERS:
        if model in converter.models and converter.recognizes(source):
            return converter
    return None


class SamePaths(Converter):
    """Weights stored by the model's own variable paths (a ported cache file,
    another kerazoo model's values)."""

    source = "kerazoo"

    def ports(self, model, source):
        paths = [v.path for v in model.weights]
        # The source's classifier too: skipped, not unused, when the model
        # has none or keeps its own.
        paths += [k for k in source if k.startswith(HEAD) and k not in paths]
        return [Port(path, (path,)) for path in paths]
