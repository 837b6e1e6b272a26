"""Weights from a local PyTorch checkpoint: `create_model(name,
weights="model.pth", weights_map=...)`.

The checkpoint is read by `load_checkpoint` (no torch, no code from the file).
`weights_map` says which checkpoint tensor fills each of the model's variables:
a dict from variable path (`body/stem/conv/kernel`) to checkpoint key
(`conv1.weight`), or a function of the path returning the key (None: no
tensor for that variable). Tensors are moved to Keras's layout by their kind:
convolution kernels OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1),
1-D convolutions OIK -> KIO, dense weights (out, in) -> (in, out); batch norm's
`running_mean`/`running_var` need only their names mapped. Everything is
checked before anything is assigned: a variable the map leaves out, a key the
checkpoint lacks and a shape mismatch are each named, and nothing is loaded.
The layout transforms are the converters' (`kerazoo.pretrained.convert`).
"""

import difflib
import pathlib

import numpy as np

from kerazoo.pretrained.assign import HEAD
from kerazoo.pretrained.assign import WeightMismatchError
from kerazoo.pretrained.assign import assign_from
from kerazoo.pretrained.checkpoint import load_checkpoint
from kerazoo.pretrained.convert import conv_kernel
from kerazoo.pretrained.convert import dense_kernel
from kerazoo.pretrained.convert import depthwise_kernel

SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


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


def load_torch_file(model, path, weights_map, reset_head=False):
    """Loads the PyTorch checkpoint at `path` into `model`, all or nothing.

    Args:
        model: The model to fill.
        path: A `.pth`/`.pt`/`.bin`/`.ckpt` file (legacy or zip format).
        weights_map: dict `{variable path: checkpoint key}` or a function of
            the variable path returning the key.
        reset_head: Keep the model's `predictions` layer when the
            checkpoint's has another shape (another number of classes).

    Returns:
        `model`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if weights_map is None:
        raise ValueError(
            f"{path} is a PyTorch checkpoint: pass weights_map, a dict from the "
            "model's variable paths (`[v.path for v in model.weights]`) to the "
            "checkpoint's keys, or a function of the path."
        )
    lookup = weights_map if callable(weights_map) else weights_map.get
    source = load_checkpoint(path)
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
