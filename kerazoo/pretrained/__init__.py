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


def load_pretrained(model, name, tag, head=True):
    """Loads the manifest's `tag` weights of model `name` into `model`.

    The file's sha256 is checked before it is read; every shape is checked
    before anything is assigned. With `head=False` the classifier keeps its
    own (new) weights.
    """
    from kerazoo.pretrained.efficientnet_lite import load_efficientnet_lite
    from kerazoo.pretrained.manifest import weights_file

    entry = find_weights(name, tag)
    path = weights_file(entry)
    if entry.converter == "efficientnet_lite":
        return load_efficientnet_lite(model, path, head=head)
    raise ValueError(f"No converter {entry.converter!r}.")
