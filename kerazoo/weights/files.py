"""Weights from a local Keras file: `create_model(name, weights="my.keras")`.

A `.keras` file is loaded with `safe_mode=True` and its weights are matched to the
model by variable path (`body/stage1/...`, `predictions/kernel`); a
`.weights.h5` file is loaded into a twin of the model built with the same
arguments. Either way every weight is checked before any is assigned: a
mismatch names the first variable and both shapes, and the model keeps its own
weights. A classifier with another number of classes than the file's keeps its
new head only when asked (`reset_head=True`).
"""

import pathlib

import keras
import numpy as np

from kerazoo._compat import assign_shape_mismatch
from kerazoo._compat import weights_h5_shape
from kerazoo.api import load_model
from kerazoo.weights.assign import HEAD
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.assign import assign_from

SUFFIXES = (".keras", ".weights.h5")


def is_weights_path(weights):
    return isinstance(weights, (str, pathlib.Path)) and str(weights).endswith(SUFFIXES)


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def load_weights_file(model, path, build_twin, reset_head=False):
    """Loads `path` into `model`, all or nothing.

    Args:
        model: The model to fill.
        path: A `.keras` or `.weights.h5` file.
        build_twin: `build_twin(num_classes)` returns a new model of the same
            architecture (needed for `.weights.h5`, which stores no
            architecture).
        reset_head: Keep the model's new `predictions` layer when its shape
            differs from the file's.

    Returns:
        `model`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".keras":
        source = load_model(path, compile=False)
        values = _values(source)
    else:
        values = _values(_twin_with_file(path, build_twin, model, reset_head))
    pairs, missing = [], []
    for variable in model.weights:
        value = values.pop(variable.path, None)
        if value is None:
            missing.append(variable.path)
            continue
        if (
            reset_head
            and variable.path.startswith(HEAD)
            and tuple(value.shape) != tuple(variable.shape)
        ):
            continue
        pairs.append((variable, np.asarray(value)))
    if missing:
        raise WeightMismatchError(
            f"{path} has no weight for {missing[0]} (and {len(missing) - 1} more) "
            "of this model; is it the same architecture? Nothing was loaded."
        )
    assign_from(path, pairs)
    return model


def _file_classes(path):
    """The number of classes of the file's head: the length of the bias of
    the model's only Dense layer (`predictions`), when the file has one."""
    shape = weights_h5_shape(path, "dense", 1)
    return None if shape is None else int(shape[0])


def _twin_with_file(path, build_twin, model, reset_head):
    classes = int(model.outputs[0].shape[-1])
    if reset_head:
        classes = _file_classes(path) or classes
    twin = build_twin(classes)
    try:
        twin.load_weights(path)
    except (ValueError, KeyError) as error:
        mismatch = assign_shape_mismatch(error)
        if mismatch is not None:
            where, ours, theirs = mismatch
            detail = (
                f"shape mismatch at {where}: the model has {ours}, the file {theirs}"
            )
            if where.startswith(HEAD):
                detail += ". For a new number of classes pass reset_head=True"
        else:
            detail = str(error).split("\n\n")[-1].split("\n")[0][:300]
        raise WeightMismatchError(
            f"{path} does not fit this model ({detail}). Nothing was loaded."
        ) from None
    return twin
