"""Pretrained weights: the manifest, safe readers and converters.

`load_checkpoint(path)` reads PyTorch checkpoints into NumPy arrays without torch
and without running code from the file; `load_safetensors(path)` reads
`.safetensors` files, with NumPy only. `load_pretrained(model, name, tag)`
puts a manifest entry's weights into a kerazoo model, after checking the file's
sha256; `create_model(name, weights="imagenet")` calls it. Every weight source
maps onto the model through a `Converter` (`kerazoo.weights.convert`), which
checks every variable and shape before it assigns anything.

This package sits below `kerazoo.models` and never imports it: it takes a built
model, and where it must build one itself (porting keras.applications weights,
`from_keras_application`) it is given `build=kerazoo.models.create_model`.
"""

from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.cache import cached_weights
from kerazoo.weights.checkpoint import CheckpointFormatError
from kerazoo.weights.checkpoint import UnsafeCheckpointError
from kerazoo.weights.checkpoint import load_checkpoint
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import SamePaths
from kerazoo.weights.convert import find_converter
from kerazoo.weights.convert import register_converter
from kerazoo.weights.keras_applications import from_keras_application
from kerazoo.weights.manifest import MANIFEST
from kerazoo.weights.manifest import WeightsEntry
from kerazoo.weights.manifest import WeightsIntegrityError
from kerazoo.weights.manifest import WeightsUnavailableError
from kerazoo.weights.manifest import available_weights
from kerazoo.weights.manifest import find_weights
from kerazoo.weights.manifest import register_weights
from kerazoo.weights.manifest import weights_file
from kerazoo.weights.safetensors_files import load_safetensors

__all__ = [
    "MANIFEST",
    "CheckpointFormatError",
    "Converter",
    "Port",
    "UnsafeCheckpointError",
    "WeightMismatchError",
    "WeightsEntry",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "available_weights",
    "find_converter",
    "find_weights",
    "from_keras_application",
    "load_checkpoint",
    "load_pretrained",
    "load_safetensors",
    "register_converter",
    "register_weights",
]


def load_pretrained(model, name, tag, head=True, log=print, *, build=None):
    """Loads the manifest's `tag` weights of model `name` into `model`.

    The file's sha256 is checked before it is read; every shape is checked
    before anything is assigned. With `head=False` the classifier keeps its
    own (new) weights. Weights ported from keras.applications are downloaded
    and ported once, into the cache (`kerazoo.weights.cache`); `log`
    receives the progress of that, and `build` (`kerazoo.models.create_model`)
    builds the model they are ported into.
    """
    entry = find_weights(name, tag)
    if entry.converter == "keras_applications":
        values, record = cached_weights(entry, log=log, build=build)
        SamePaths().apply(
            model, values, head=head, origin=f"The ported {record['model']!r} weights"
        )
        preprocessing = record["preprocessing"]
        if preprocessing["mode"] == "custom":
            model.get_layer("preprocessing").set_affine(
                preprocessing["scale"], preprocessing["offset"]
            )
        return model
    # A checkpoint shipped in a package, mapped by its family's converter.
    path = weights_file(entry)
    converter = find_converter(entry.converter, entry.model)
    return converter.apply(model, load_checkpoint(path), head=head, origin=path)
