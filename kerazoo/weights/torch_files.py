"""Weights from a local PyTorch checkpoint or safetensors file:
`create_model(name, weights="model.pth")`, `weights="model.safetensors"`.

A checkpoint is read by `load_checkpoint`, a `.safetensors` file by
`load_safetensors` (NumPy only; no torch, no code from the file). When a
registered converter knows the file's names for this model (torchvision's and
timm's ResNets, ConvNeXts and EfficientNets: `kerazoo.models.resnet.convert_torch`,
`kerazoo.models.convnext.convert_torch`,
`kerazoo.models.efficientnet.convert_torch`; torchvision's MobileNetV3s:
`kerazoo.models.mobilenet.convert_torch`), it maps them and no
`weights_map` is needed; its checks are the converter's (every variable
filled, every tensor used, every shape right). `create_model` reads the file
first and builds the model with that converter's `options` (for the ResNets,
EfficientNets and MobileNetV3s, PyTorch's symmetric padding of the strided convolutions,
`padding="symmetric"`), refusing conflicting ones (`build_options`).
Otherwise `weights_map` says which checkpoint tensor fills each of the
model's variables: a dict from variable path (`body/stem/conv/kernel`) to
checkpoint key (`conv1.weight`), or a function of the path returning the key
(None: no tensor for that variable). Tensors are moved to Keras's layout by their kind:
convolution kernels OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1),
1-D convolutions OIK -> KIO, dense weights (out, in) -> (in, out); batch norm's
`running_mean`/`running_var` need only their names mapped. Everything is
checked before anything is assigned: a variable the map leaves out, a key the
checkpoint lacks and a shape mismatch are each named, and nothing is loaded.
The layout transforms are the converters' (`kerazoo.weights.convert`).
"""

import difflib
import pathlib

import numpy as np

from kerazoo.weights import convert
from kerazoo.weights.assign import HEAD
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.assign import assign_from
from kerazoo.weights.checkpoint import load_checkpoint
from kerazoo.weights.convert import conv_kernel
from kerazoo.weights.convert import dense_kernel
from kerazoo.weights.convert import depthwise_kernel
from kerazoo.weights.safetensors_files import SUFFIX as SAFETENSORS
from kerazoo.weights.safetensors_files import load_safetensors

SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", SAFETENSORS)


def is_torch_path(weights):
    return isinstance(weights, (str, pathlib.Path)) and str(weights).endswith(SUFFIXES)


def to_keras_layout(value, shape):
    """`value`, a PyTorch tensor, in Keras's layout for a variable of `shape`
    (unchanged when no layout change gives that shape, so that the mismatch
    is reported as it is)."""
    value = np.asarray(value)
    shape = tuple(shape)
    if value.ndim == 4:
        # Regular convolution first; depthwise (one input channel per
        # group) when only that one fits.
        if conv_kernel(value).shape != shape and value.shape[1] == 1:
            if depthwise_kernel(value).shape == shape:
                return depthwise_kernel(value)
        return conv_kernel(value)
    if value.ndim == 3:
        return value.transpose(2, 1, 0)
    if value.ndim == 2:
        return dense_kernel(value)
    return value


def read_tensors(path):
    """`{name: numpy array}` of a `.safetensors` file or a PyTorch
    checkpoint, read safely and without torch."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if str(path).endswith(SAFETENSORS):
        return load_safetensors(path)
    return load_checkpoint(path)


def build_options(name, source, options, origin="The file"):
    """`options` (a registered model's family options, as given to
    `create_model`) with those that the converter recognising `source`'s
    names requires (`Converter.options`) added; unchanged when none does.
    A given option that conflicts raises `ValueError`."""
    converter = convert.recognizing_converter(name, source)
    if converter is None:
        return dict(options)
    options = dict(options)
    for key, value in converter.options.items():
        if options.setdefault(key, value) != value:
            raise ValueError(
                f"{origin} holds {converter.source!r} weights, which "
                f"{name!r} takes built with {key}={value!r}. "
                f"Received: {key}={options[key]!r}"
            )
    return options


def load_torch_file(model, path, weights_map=None, reset_head=False, tensors=None):
    """Loads the PyTorch checkpoint or safetensors file at `path` into
    `model`, all or nothing.

    Args:
        model: The model to fill.
        path: A `.pth`/`.pt`/`.bin`/`.ckpt` file (legacy or zip format) or a
            `.safetensors` file.
        weights_map: dict `{variable path: checkpoint key}` or a function of
            the variable path returning the key; None: the names must be
            known to a registered converter (torchvision/timm ResNets, ConvNeXts,
            EfficientNets; torchvision MobileNetV3s).
        reset_head: Keep the model's `predictions` layer when the
            checkpoint's has another shape (another number of classes).
        tensors: The file's tensors when already read (`read_tensors(path)`).

    Returns:
        `model`.
    """
    path = pathlib.Path(path)
    if tensors is None:
        tensors = read_tensors(path)
    source = tensors
    if weights_map is None:
        converter = convert.recognizing_converter(model.name, source)
        if converter is None:
            raise ValueError(
                f"kerazoo knows no naming of {path}'s tensors for "
                f"{model.name!r}: pass weights_map, a dict from the model's "
                "variable paths (`[v.path for v in model.weights]`) to the "
                "file's keys, or a function of the path."
            )
        head = not reset_head or _head_fits(model, source, converter)
        return converter.apply(model, source, head=head, origin=str(path))
    lookup = weights_map if callable(weights_map) else weights_map.get
    pairs = []
    for variable in model.weights:
        key = lookup(variable.path)
        if key is None:
            raise WeightMismatchError(
                f"weights_map gives no checkpoint key for {variable.path} "
                f"{tuple(variable.shape)}. Nothing was loaded."
            )
        if key not in source:
            close = difflib.get_close_matches(key, list(source), n=3)
            hint = f" Close keys: {', '.join(close)}." if close else ""
            raise WeightMismatchError(
                f"{path} has no {key!r} (mapped from {variable.path}).{hint} "
                "Nothing was loaded."
            )
        value = to_keras_layout(source[key], variable.shape)
        if (
            reset_head
            and variable.path.startswith(HEAD)
            and value.shape != tuple(variable.shape)
        ):
            continue
        pairs.append((variable, value))
    assign_from(path, pairs)
    return model


def _head_fits(model, source, converter):
    """Whether the source's classifier has the shape of `model`'s."""
    variables = {v.path: v for v in model.weights}
    for port in converter.ports(model, source):
        variable = variables.get(port.target)
        if not port.target.startswith(HEAD) or variable is None:
            continue
        if not all(k in source for k in port.sources):
            continue  # named as missing by the converter's checks
        value = port.transform(*(np.asarray(source[k]) for k in port.sources))
        if tuple(np.shape(value)) != tuple(variable.shape):
            return False
    return True
