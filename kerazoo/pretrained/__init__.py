"""Pretrained weights: the manifest, safe readers and converters.

`load_checkpoint(path)` reads PyTorch checkpoints into NumPy arrays without torch
and without running code from the file. `load_pretrained(model, name, tag)`
puts a manifest entry's weights into a kerazoo model, after checking the file's
sha256; `create_model(name, weights="imagenet")` calls it.
"""

from kerazoo.pretrained.assign import WeightMismatchError
from kerazoo.pretrained.checkpoint import CheckpointFormatError
from kerazoo.pretrained.checkpoint import UnsafeCheckpointError
from kerazoo.pretrained.checkpoint import load_checkpoint
from kerazoo.pretrained.keras_applications import from_keras_application
from kerazoo.pretrained.manifest import MANIFEST
from kerazoo.pretrained.manifest import WeightsEntry
from kerazoo.pretrained.manifest import WeightsIntegrityError
from kerazoo.pretrained.manifest import WeightsUnavailableError
from kerazoo.pretrained.manifest import available_weights
from kerazoo.pretrained.manifest import find_weights

__all__ = [
    "MANIFEST",
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "WeightMismatchError",
    "WeightsEntry",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "available_weights",
    "find_weights",
    "from_keras_application",
    "load_checkpoint",
    "load_pretrained",
]


def load_pretrained(model, name, tag, head=True, log=print):
    """Loads the manifest's `tag` weights of model `name` into `model`.

    The file's sha256 is checked before it is read; every shape is checked
    before anything is assigned. With `head=False` the classifier keeps its
    own (new) weights. Weights ported from keras.applications are downloaded
    and ported once, into the cache (`kerazoo.pretrained.cache`); `log`
    receives the progress of that.
    """
    entry = find_weights(name, tag)
    if entry.converter == "efficientnet_lite":
        from kerazoo.pretrained.efficientnet_lite import load_efficientnet_lite
        from kerazoo.pretrained.manifest import weights_file

        return load_efficientnet_lite(model, weights_file(entry), head=head)
    if entry.converter == "keras_applications":
        from kerazoo.pretrained.cache import cached_weights

        values, record = cached_weights(entry, log=log)
        return _assign_by_path(model, values, record, head)
    raise ValueError(f"No converter {entry.converter!r}.")


def _assign_by_path(model, values, record, head):
    import numpy as np

    from kerazoo.pretrained.assign import assign_checked

    pairs = []
    for variable in model.weights:
        if variable.path.startswith("predictions/") and not head:
            continue
        if variable.path not in values:
            raise WeightMismatchError(
                f"The ported {record['model']!r} weights have no {variable.path}: "
                "is the model built with other options? Nothing was loaded."
            )
        pairs.append((variable, np.asarray(values[variable.path])))
    assign_checked(pairs)
    preprocessing = record["preprocessing"]
    if preprocessing["mode"] == "custom":
        model.get_layer("preprocessing").set_affine(
            preprocessing["scale"], preprocessing["offset"]
        )
    return model
